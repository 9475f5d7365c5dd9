"""The one mapping between platform user ids and wallet account names.

Beancount account components must start with a capital letter or a digit and
hold only letters, digits and dashes, while platform user ids are arbitrary
strings. :func:`user_component` maps an id to a component deterministically and
without collisions (:func:`user_id_of` inverts it):

- letters and digits are kept, except that the first character is special:
  a lowercase first letter is upper-cased (``alice`` -> ``Alice``), a first
  digit is kept, and any other first character (an uppercase letter, ``x``,
  punctuation) is written as ``X`` followed by its escape;
- a dash is written ``--``; every other byte of the UTF-8 encoding is written
  ``-HH`` (two uppercase hex digits).

So ``org-acme`` -> ``Org--acme``, ``u_1234`` -> ``U-5F1234``, ``Alice`` ->
``X-41lice``. Tools never rely on parsing names: the original id is stored as
``user_id:`` on the account's ``open`` directive and looked up from there.
"""

from __future__ import annotations

_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789ABCDEF")


class UserIdError(ValueError):
    """A user id that cannot be mapped to an account name."""


def _escape_char(char: str) -> str:
    if char == "-":
        return "--"
    return "".join(f"-{byte:02X}" for byte in char.encode("utf-8"))


def user_component(user_id: str) -> str:
    """Return the account component for a platform user id."""
    if not isinstance(user_id, str) or not user_id:
        raise UserIdError(f"user id must be a non-empty string, not {user_id!r}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in user_id):
        raise UserIdError(f"user id {user_id!r} contains control characters")
    first, rest = user_id[0], user_id[1:]
    if "a" <= first <= "z" and first != "x":
        head = first.upper()
    elif "0" <= first <= "9":
        head = first
    else:
        head = "X" + _escape_char(first)
    return head + "".join(char if char in _KEEP else _escape_char(char) for char in rest)


def user_id_of(component: str) -> str:
    """Invert :func:`user_component`; raises UserIdError for a malformed name."""
    if not component:
        raise UserIdError("empty account component")
    out = bytearray()
    pos = 0
    first = component[0]
    if first == "X" and len(component) > 1 and component[1] == "-":
        pos = 1
    elif "A" <= first <= "Z":
        out += first.lower().encode()
        pos = 1
    elif "0" <= first <= "9":
        out += first.encode()
        pos = 1
    else:
        raise UserIdError(f"{component!r} is not a user account component")
    while pos < len(component):
        char = component[pos]
        if char != "-":
            if char not in _KEEP:
                raise UserIdError(f"{component!r} holds {char!r}")
            out += char.encode()
            pos += 1
        elif component[pos + 1 : pos + 2] == "-":
            out += b"-"
            pos += 2
        else:
            hexpair = component[pos + 1 : pos + 3]
            if len(hexpair) != 2 or not set(hexpair) <= _HEX:
                raise UserIdError(f"{component!r} has a bad escape at {pos}")
            out.append(int(hexpair, 16))
            pos += 3
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserIdError(f"{component!r} does not decode: {exc}") from None


def user_account(user_id: str, users_root: str = "Assets:Credits:Users") -> str:
    """Return the wallet account of a platform user id."""
    return f"{users_root}:{user_component(user_id)}"
