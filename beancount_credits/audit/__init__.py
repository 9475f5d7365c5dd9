"""Whether recorded history still holds, and who changed it.

- :mod:`.verify`: recorded balances, expiries and seals the ledger no longer
  agrees with, explained from git;
- :mod:`.provenance`: a user's entries with the commit that last changed each;
- :mod:`.git_history`: what git says of the ledger's lines (blame, ``log -L``);
- :mod:`.seal_history`: sealed lines removed or rewritten, commit by commit
  (:mod:`.folder_log`: the ledger folder's commits and patches, from git);
- :mod:`.amend`: an attributed amendment of sealed days.
"""
