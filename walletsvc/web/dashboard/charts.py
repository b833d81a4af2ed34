"""Inline SVG bar charts, drawn on the server: no script, no external asset, no style attribute.

Colours are SVG presentation attributes (which a CSP style-src does not govern). Every
bar carries its figure in `data-chart`, `data-series`, `data-label` and `data-value`,
and a `<title>` a screen reader or a mouse pointer shows; each chart is followed by the
same figures as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
LEFT = 48  # room for the y-axis numbers
TOP = 12
BOTTOM = 28  # room for the x-axis labels
ROW = 22  # one category of a horizontal chart


@dataclass(frozen=True)
class Series:
    """One coloured set of bars: a stable key, what the legend calls it, its values."""

    key: str
    name: str
    colour: str
    values: Sequence[int]


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{s.colour}"/></svg>{escape(s.name)}</li>'
        for s in series
    )
    return f'<ul class="legend">{items}</ul>'


def _table(
    caption: str, head: str, labels: Sequence[str], series: Sequence[Series], fmt: Fmt
) -> str:
    header = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in series)
    rows = "".join(
        f'<tr><th scope="row">{escape(label)}</th>'
        + "".join(f"<td>{escape(fmt(s.values[i]))}</td>" for s in series)
        + "</tr>"
        for i, label in enumerate(labels)
    )
    return (
        f"<details><summary>{escape(caption)}</summary><table><thead><tr>"
        f'<th scope="col">{escape(head)}</th>{header}</tr></thead><tbody>{rows}</tbody>'
        "</table></details>"
    )


Fmt = Callable[[int], str]


def _bar(chart: str, s: Series, label: str, value: int, box: tuple[float, ...], fmt: Fmt) -> str:
    x, y, w, h = box
    return (
        f'<rect class="bar" data-chart="{escape(chart)}" data-series="{escape(s.key)}" '
        f'data-label="{escape(label)}" data-value="{value}" x="{x:.1f}" y="{y:.1f}" '
        f'width="{w:.1f}" height="{h:.1f}" fill="{s.colour}">'
        f"<title>{escape(label)} · {escape(s.name)}: {escape(fmt(value))}</title></rect>"
    )


def column_chart(
    chart: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Fmt,
    head: str,
    table_caption: str,
    tick_every: int = 7,
) -> str:
    """Return vertical bars per label (days), one bar per series side by side."""
    height = 200
    plot_w, plot_h = WIDTH - LEFT - 8, height - TOP - BOTTOM
    top = max([1, *(v for s in series for v in s.values)])
    group = plot_w / max(len(labels), 1)
    bar_w = group * 0.8 / max(len(series), 1)
    parts = [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" '
        'stroke="currentColor" stroke-width="1"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{escape(fmt(top))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(labels):
        x0 = LEFT + i * group + group * 0.1
        for j, s in enumerate(series):
            value = s.values[i]
            h = plot_h * value / top
            box = (x0 + j * bar_w, TOP + plot_h - h, max(bar_w - 1, 1), h)
            parts.append(_bar(chart, s, label, value, box, fmt))
        last = i == len(labels) - 1
        # A tick every week and the last day; none crowding the last one.
        if (i % tick_every == 0 and len(labels) - 1 - i >= 3) or last:
            anchor = "end" if last else "start"
            parts.append(
                f'<text x="{x0 + (group * 0.8 if last else 0):.1f}" y="{height - 8}" '
                f'text-anchor="{anchor}">{escape(label[5:] if len(label) == 10 else label)}</text>'
            )
    return _figure(chart, title, height, parts, series) + _table(
        table_caption, head, labels, series, fmt
    )


def row_chart(
    chart: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Fmt,
    head: str,
    table_caption: str,
    names: Sequence[str] | None = None,
) -> str:
    """Return horizontal bars per category (stores, tiers, sinks), one per series."""
    names = names or labels
    label_w = 200
    plot_w = WIDTH - label_w - 60
    height = TOP + len(labels) * ROW * max(len(series), 1) + len(labels) * 6 + 8
    top = max([1, *(v for s in series for v in s.values)])
    parts = []
    y = float(TOP)
    for i, label in enumerate(labels):
        name = names[i] if len(names[i]) <= 28 else names[i][:27] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + ROW * 0.7:.1f}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        for s in series:
            value = s.values[i]
            w = plot_w * value / top
            parts.append(_bar(chart, s, label, value, (label_w, y + 2, w, ROW - 4), fmt))
            at = f'x="{label_w + w + 6:.1f}" y="{y + ROW * 0.7:.1f}"'
            parts.append(f"<text {at}>{escape(fmt(value))}</text>")
            y += ROW
        y += 6
    return _figure(chart, title, int(height), parts, series) + _table(
        table_caption, head, names, series, fmt
    )


def _figure(chart: str, title: str, height: int, parts: list[str], series: Sequence[Series]) -> str:
    legend = _legend(series) if len(series) > 1 else ""
    return (
        f'<figure><figcaption id="{escape(chart)}-title">{escape(title)}</figcaption>{legend}'
        f'<svg class="chart" id="{escape(chart)}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{escape(chart)}-title" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg></figure>'
    )
