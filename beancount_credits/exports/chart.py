"""A report's chart (``Table.chart``) drawn with matplotlib, for the PDF export.

While the table streams, :class:`ChartData` keeps only the chart's columns,
in compact arrays (x, series, one float per y column and row). Drawing then
reduces them the way the chart kind reads:

- ``line``/``step``: a balance over time, so the *last* value of each x wins
  (a statement with several lines on a day ends the day at the last one);
- ``bar``: an amount per period, so the values of each x are *summed*.

With ``series``, each distinct value of that column is its own line or bar
group; past :data:`MAX_SERIES` the largest (by peak absolute value) are drawn
and the chart's caption says how many were left out.
"""

from __future__ import annotations

import datetime
import io
import math
from array import array
from collections.abc import Sequence
from decimal import Decimal

from beancount_credits.exports import ExportError
from beancount_credits.reports.table import Cell, Chart, Column

MAX_SERIES = 8


class ChartError(ExportError):
    """A chart spec naming columns the table does not have."""


class ChartData:
    """The chart's x/y (and series) values, collected row by row."""

    def __init__(self, chart: Chart, columns: Sequence[Column]):
        names = [column.name for column in columns]
        missing = [name for name in [chart.x, *chart.y, chart.series] if name and name not in names]
        if missing:
            raise ChartError(f"chart of columns not in the table: {', '.join(missing)}")
        self.chart = chart
        self.x_index = names.index(chart.x)
        self.y_indexes = [names.index(name) for name in chart.y]
        self.series_index = names.index(chart.series) if chart.series else None
        self.dates = columns[self.x_index].kind == "date"
        # x: a date ordinal, or the index of a label in self.labels.
        self.xs = array("q")
        self.ys = [array("d") for _ in chart.y]
        self.series = array("l")
        self.labels: dict[str, int] = {}
        self.series_names: dict[str, int] = {}
        self.peaks: list[float] = []  # per series, the largest absolute y

    def add(self, row: Sequence[Cell]) -> None:
        x = row[self.x_index]
        if x is None:
            return
        if self.dates and isinstance(x, datetime.date):
            self.xs.append(x.toordinal())
        else:
            self.xs.append(self.labels.setdefault(str(x), len(self.labels)))
        key = "" if self.series_index is None else str(row[self.series_index] or "")
        series = self.series_names.setdefault(key, len(self.series_names))
        if series == len(self.peaks):
            self.peaks.append(0.0)
        self.series.append(series)
        for ys, index in zip(self.ys, self.y_indexes, strict=True):
            value = row[index]
            number = float(value) if isinstance(value, Decimal | int | float) else math.nan
            ys.append(number)
            if not math.isnan(number):
                self.peaks[series] = max(self.peaks[series], abs(number))

    def __len__(self) -> int:
        return len(self.xs)

    def shown_series(self) -> list[int]:
        """The series drawn: all, or the MAX_SERIES with the largest peaks."""
        ranked = sorted(range(len(self.peaks)), key=lambda s: (-self.peaks[s], s))
        return sorted(ranked[:MAX_SERIES])

    def points(self) -> dict[tuple[int, int], dict[int, float]]:
        """(series, y column) -> x -> value, reduced as the chart kind reads (last or sum)."""
        shown = set(self.shown_series())
        summed = self.chart.kind == "bar"
        result: dict[tuple[int, int], dict[int, float]] = {}
        for row, (x, series) in enumerate(zip(self.xs, self.series, strict=True)):
            if series not in shown:
                continue
            for column, ys in enumerate(self.ys):
                value = ys[row]
                if math.isnan(value):
                    continue
                line = result.setdefault((series, column), {})
                line[x] = line.get(x, 0.0) + value if summed else value
        return result

    def caption(self) -> str:
        title = self.chart.title or ", ".join(self.chart.y) + " by " + self.chart.x
        left_out = len(self.peaks) - len(self.shown_series())
        if left_out > 0:
            title += (
                f" ({MAX_SERIES} largest of {len(self.peaks)} {self.chart.series} values shown)"
            )
        return title

    def render_png(self, width: float, height: float, dpi: int = 150) -> bytes:
        """The chart as PNG bytes, ``width`` x ``height`` inches."""
        from matplotlib.figure import Figure  # no pyplot: no global state, safe in a server

        figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        axes = figure.add_subplot()
        points = self.points()
        series_names = {index: name for name, index in self.series_names.items()}
        labels = sorted(self.labels, key=str)  # text x values: periods sort as text
        position = {self.labels[label]: index for index, label in enumerate(labels)}

        def x_value(x: int) -> object:
            if self.dates:
                return datetime.date.fromordinal(x)
            return position[x]

        def name(series: int, column: int) -> str:
            parts = []
            if self.series_index is not None:
                parts.append(series_names[series] or "(none)")
            if len(self.ys) > 1 or not parts:
                parts.append(self.chart.y[column])
            return " ".join(parts)

        keys = sorted(points)
        if self.chart.kind == "bar":
            # Bars are categories (periods), grouped side by side per series/column.
            categories = sorted({x for line in points.values() for x in line}, key=x_value)  # type: ignore[arg-type]
            slot = {x: index for index, x in enumerate(categories)}
            width_each = 0.8 / max(1, len(keys))
            for offset, key in enumerate(keys):
                xs = sorted(points[key], key=slot.__getitem__)
                axes.bar(
                    [slot[x] - 0.4 + width_each * (offset + 0.5) for x in xs],
                    [points[key][x] for x in xs],
                    width=width_each,
                    label=name(*key),
                )
            names = [
                str(datetime.date.fromordinal(x)) if self.dates else labels[position[x]]
                for x in categories
            ]
            step = max(1, len(names) // 24)  # at most ~24 tick labels
            axes.set_xticks(range(0, len(names), step), names[::step], rotation=45, ha="right")
        else:
            for key in keys:
                xs = sorted(points[key], key=x_value)  # type: ignore[arg-type]
                values = [points[key][x] for x in xs]
                plotted = [x_value(x) for x in xs]
                if self.chart.kind == "step":
                    axes.step(plotted, values, where="post", label=name(*key))  # type: ignore[arg-type]
                else:
                    axes.plot(plotted, values, label=name(*key))  # type: ignore[arg-type]
            if self.dates:
                figure.autofmt_xdate()
            elif labels:
                step = max(1, len(labels) // 24)
                axes.set_xticks(
                    range(0, len(labels), step), labels[::step], rotation=45, ha="right"
                )
        axes.set_title(self.caption(), fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.axhline(0, color="black", linewidth=0.6)
        if len(keys) > 1:
            axes.legend(fontsize=7, loc="best")
        buffer = io.BytesIO()
        # No "Software" stamp: the same data gives the same bytes.
        figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
