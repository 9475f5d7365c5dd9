"""The shape every report returns: typed columns and rows, plus the filters used."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Literal

Kind = Literal["text", "date", "number"]
Cell = str | Decimal | datetime.date | None


class ReportError(Exception):
    """A report that cannot be made as asked (unknown user, bad filter...)."""


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = "text"


@dataclasses.dataclass(frozen=True)
class Filters:
    """What a report is restricted to; None means no restriction."""

    user: str | None = None
    segment: str | None = None
    commodity: str | None = None
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    factor: Decimal | None = None  # audit: "unusual" is a day above factor x the median day

    def describe(self) -> list[tuple[str, str]]:
        """The filters in use, as (name, value) pairs for report headers."""
        pairs = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                pairs.append((field.name.replace("_", " "), str(value)))
        return pairs


@dataclasses.dataclass
class Table:
    """A report's result. ``rows`` may be a generator: renderers stream it once."""

    title: str
    columns: list[Column]
    rows: Iterable[list[Cell]]
    filters: Filters = dataclasses.field(default_factory=Filters)
    notes: list[str] = dataclasses.field(default_factory=list)

    def __iter__(self) -> Iterator[list[Cell]]:
        return iter(self.rows)


def format_cell(value: Any) -> str:
    """A cell as text: numbers without exponent, empty for None."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)
