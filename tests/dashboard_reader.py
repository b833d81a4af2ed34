"""Reads the operator dashboard's HTML the way the tests check it: the figures on its charts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class DashboardReading:
    """What one dashboard page shows."""

    # (chart, series, label) -> value, from every <rect data-chart=...>
    bars: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # data-figure -> data-value
    figures: dict[str, str] = field(default_factory=dict)
    # data-sink -> {"pending": n, "dead": n}
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)
    # data-<kind> rows of the error tables: kind -> {name: count}
    rows: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    programs: list[str] = field(default_factory=list)  # the selector's options
    program: str | None = None  # the program shown
    svgs: int = 0
    scripts: int = 0
    style_attributes: int = 0
    text: str = ""

    def bar(self, chart: str, series: str, label: str) -> int:
        """Return one bar's value (0 when the page has no such bar)."""
        return self.bars.get((chart, series, label), 0)

    def total(self, chart: str, series: str) -> int:
        """Return the sum of one series on a chart."""
        return sum(v for (c, s, _), v in self.bars.items() if (c, s) == (chart, series))


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.reading = DashboardReading()
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        r = self.reading
        if "style" in a:
            r.style_attributes += 1
        if tag == "script":
            r.scripts += 1
        if tag == "svg" and "chart" in a.get("class", ""):
            r.svgs += 1
        if tag == "rect" and "data-chart" in a:
            r.bars[(a["data-chart"], a["data-series"], a["data-label"])] = int(a["data-value"])
        if "data-figure" in a:
            r.figures[a["data-figure"]] = a["data-value"]
        if "data-sink" in a:
            r.sinks[a["data-sink"]] = {
                "pending": int(a["data-pending"]),
                "dead": int(a["data-dead"]),
            }
        if "data-program" in a:
            r.program = a["data-program"]
        if tag == "option":
            r.programs.append(a["value"])
        for kind in ("apns-error", "google-state", "google-field", "callback"):
            if f"data-{kind}" in a:
                r.rows[kind][a[f"data-{kind}"]] = int(a["data-value"])

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def read_dashboard(html: str) -> DashboardReading:
    """Return what a dashboard page shows."""
    reader = _Reader()
    reader.feed(html)
    reader.reading.text = " ".join(reader._text)
    return reader.reading
