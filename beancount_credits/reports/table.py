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
    member: str | None = None  # an organisation's team member (redemptions' ``member:``)
    period: Literal["day", "week", "month"] | None = None  # usage, liability, top...
    days: int | None = None  # expiring: grants expiring within this many days
    search: str | None = None  # users: a part of the user id (any case)
    sort: str | None = None  # a column name to sort the rows by
    desc: bool = False

    def describe(self) -> list[tuple[str, str]]:
        """The filters in use, as (name, value) pairs for report headers."""
        pairs = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "desc" or value is None:
                continue  # the order is part of the sort: "Balance, descending"
            if field.name == "sort":
                value = f"{value}, {'descending' if self.desc else 'ascending'}"
            pairs.append((field.name.replace("_", " "), str(value)))
        return pairs


@dataclasses.dataclass(frozen=True)
class Chart:
    """A chart a person would rather look at than read (PDF, Fava).

    ``x`` names the column on the x axis, ``y`` the number columns plotted;
    with ``series`` set, one line or bar group per distinct value of that column.
    """

    kind: Literal["line", "step", "bar"]
    x: str
    y: list[str]
    series: str | None = None
    title: str = ""


@dataclasses.dataclass
class Table:
    """A report's result. ``rows`` may be a generator: renderers stream it once."""

    title: str
    columns: list[Column]
    rows: Iterable[list[Cell]]
    filters: Filters = dataclasses.field(default_factory=Filters)
    notes: list[str] = dataclasses.field(default_factory=list)
    chart: Chart | None = None

    def __iter__(self) -> Iterator[list[Cell]]:
        return iter(self.rows)


def format_cell(value: Any) -> str:
    """A cell as text: numbers without exponent, empty for None."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)
