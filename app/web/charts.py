"""Horizontal bar charts drawn on the server as accessible SVG: the model and the drawing.

Pure functions, no JavaScript. Every bar's length is proportional to its value, from zero, the
longest standing for the chart's `top` (its largest value unless given); colours come from CSS
custom properties (static/css/charts.css), so the light and dark themes and forced colours
restyle a chart without touching its markup.
evaluation_charts.py makes the /about page's charts from the evaluation's data.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 300
"""The viewBox's width: a card's column on a 375 px phone is 301 px, so 12-unit text is 12 px."""
LABEL_FONT = 12
VALUE_ROOM = 40
"""Room right of the longest bar for its value label."""
LINE = 15
BAR = 12
BAR_GAP = 3
ROW_GAP = 10
LEGEND = 20
EM_PER_CHAR = 0.62
"""A generous average character width: DejaVu Sans (Debian's default) is about 0.6 em, bold more."""
WRAP = int(WIDTH / (LABEL_FONT * EM_PER_CHAR))
"""Characters in a label line."""


@dataclass(frozen=True)
class Row:
    """One labelled row of bars, a value for each of the chart's series (None: not measured)."""

    label: str
    values: tuple[float | None, ...]
    default: bool = False
    note: str = ""


@dataclass(frozen=True)
class Chart:
    """A chart's heading, its one-sentence takeaway, its series and its rows, top to bottom."""

    slug: str
    heading: str
    takeaway: str
    measure: str
    series: tuple[str, ...]
    rows: tuple[Row, ...]
    top: float | None = None
    """The value a full-length bar stands for; None: this chart's largest value."""
    default_first: bool = False
    """The first series is the default's (drawn as a default row's bars are)."""

    @property
    def svg(self) -> Markup:
        """The chart drawn as an accessible SVG (see `draw`)."""
        return draw(self)

    @property
    def figures(self) -> str:
        """Every figure in words, for screen readers: the SVG's description."""
        parts = []
        for row in self.rows:
            values = [figure(v) for v in row.values]
            if len(self.series) == 1:
                parts.append(f"{row_label(row)} {values[0]}")
            else:
                named = zip(self.series, values, strict=True)
                pairs = ", ".join(f"{name} {v}" for name, v in named)
                parts.append(f"{row_label(row)}: {pairs}")
        return f"{self.measure}, higher is better. " + "; ".join(parts) + "."


def draw(chart: Chart) -> Markup:
    """The SVG: a legend for several series, then each row's label above its bars and values.

    role="img" with the title and the description (every figure) as its accessible name and
    description; the drawing's own text is for the eye.
    """
    top = chart.top or largest(chart)
    scale = (WIDTH - VALUE_ROOM) / top if top > 0 else 0.0
    slug = escape(chart.slug)
    parts: list[str] = []
    y = 0.0
    if len(chart.series) > 1:
        legend, y = _legend(chart, slug)
        parts.append(legend)
    for row in chart.rows:
        lines = textwrap.wrap(row_label(row), WRAP) or [""]
        classes = "chart-row is-default" if row.default else "chart-row"
        parts.append(f'<g class="{classes}">')
        for line in lines:
            y += LINE
            parts.append(f'<text class="chart-label" x="0" y="{y - 3:g}">{escape(line)}</text>')
        for index, value in enumerate(row.values):
            length = round((value or 0.0) * scale, 2)
            parts.append(
                f'<rect class="chart-bar chart-bar--{index}"{_fill(index, slug)} x="0" '
                f'y="{y + 1:g}" width="{length:g}" height="{BAR}"/>'
                f'<text class="chart-value" x="{length + 4:g}" y="{y + BAR - 1:g}">'
                f"{figure(value)}</text>"
            )
            y += BAR + BAR_GAP
        parts.append("</g>")
        y += ROW_GAP
    height = round(y, 2)
    classes = "chart chart--default-first" if chart.default_first else "chart"
    return Markup(
        f'<svg class="{classes}" viewBox="0 0 {WIDTH} {height:g}" width="100%" role="img" '
        f'aria-labelledby="{slug}-title" aria-describedby="{slug}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{slug}-title">{escape(chart.heading)}</title>'
        f'<desc id="{slug}-desc">{escape(chart.figures)}</desc>'
        f"{_patterns(slug)}{''.join(parts)}</svg>"
    )


def largest(chart: Chart) -> float:
    """The chart's largest value (0 when nothing was measured)."""
    return max((v for row in chart.rows for v in row.values if v is not None), default=0.0)


def _legend(chart: Chart, slug: str) -> tuple[str, float]:
    """Each series' swatch (its fill: patterns tell them apart without colour) and name.

    The markup and its height: an entry that would not fit goes on the next line.
    """
    items, x, y = [], 0.0, 0.0
    for index, name in enumerate(chart.series):
        width = BAR + 4 + len(name) * LABEL_FONT * EM_PER_CHAR
        if x and x + width > WIDTH:
            x, y = 0.0, y + LEGEND
        items.append(
            f'<rect class="chart-bar chart-bar--{index}"{_fill(index, slug)} x="{x:g}" '
            f'y="{y + 4:g}" width="{BAR}" height="{BAR}"/>'
            f'<text class="chart-legend" x="{x + BAR + 4:g}" y="{y + BAR + 2:g}">'
            f"{escape(name)}</text>"
        )
        x += width + 12
    return '<g class="chart-key">' + "".join(items) + "</g>", y + LEGEND + 4


def _patterns(slug: str) -> str:
    """Hatching for the second and third series: told apart by their lines, not colour alone."""
    return (
        "<defs>"
        f'<pattern id="{slug}-hatch-1" class="chart-hatch" patternUnits="userSpaceOnUse" '
        'width="5" height="5" patternTransform="rotate(45)">'
        '<rect class="chart-hatch-ground" width="5" height="5"/>'
        '<line class="chart-hatch-line" x1="1" y1="0" x2="1" y2="5"/></pattern>'
        f'<pattern id="{slug}-hatch-2" class="chart-hatch" patternUnits="userSpaceOnUse" '
        'width="4" height="4">'
        '<rect class="chart-hatch-ground" width="4" height="4"/>'
        '<circle class="chart-hatch-dot" cx="2" cy="2" r="1.2"/></pattern>'
        "</defs>"
    )


def _fill(index: int, slug: str) -> str:
    """The first series is solid (its colour from CSS); the others take a pattern."""
    return f' fill="url(#{slug}-hatch-{index})"' if index else ""


def row_label(row: Row) -> str:
    """The row's label with what marks it: the default, a baseline."""
    marks = [mark for mark in ("default" if row.default else "", row.note) if mark]
    return f"{row.label} ({', '.join(marks)})" if marks else row.label


def figure(value: float | None) -> str:
    """A value as the tables show it: three decimals, or a dash when not measured."""
    return "–" if value is None else f"{value:.3f}"
