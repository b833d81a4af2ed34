"""The outcome of each offline check, the report that collects them and how both are worded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

__all__ = [
    "Check",
    "Outcome",
    "Problem",
    "Report",
    "Status",
    "names",
    "ok",
    "quote",
    "render_text",
    "when",
]

_MAX_LISTED = 5
_MAX_QUOTED = 80

T = TypeVar("T")


class Status(StrEnum):
    """The outcome of one check."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One named check with its outcome and a plain-language detail."""

    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Report:
    """Every check run on one bundle, in order."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Return True when no check failed (warnings and skips do not fail a bundle)."""
        return all(check.status is not Status.FAIL for check in self.checks)

    def status_of(self, name: str) -> Status:
        """Return the outcome of the named check."""
        for check in self.checks:
            if check.name == name:
                return check.status
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "ok": self.ok,
            "checks": [
                {"name": c.name, "status": c.status.value, "detail": c.detail} for c in self.checks
            ],
        }


def render_text(report: Report) -> str:
    """Return the report as one line per check plus a verdict, for people."""
    marks = {Status.PASS: "✓", Status.FAIL: "✗", Status.WARN: "!", Status.SKIP: "-"}
    lines = [f"{marks[c.status]} {c.name}: {c.detail}" for c in report.checks]
    failed = sum(c.status is Status.FAIL for c in report.checks)
    warned = sum(c.status is Status.WARN for c in report.checks)
    if not report.ok:
        verdict = f"FAILED: {failed} of {len(report.checks)} checks failed"
    else:
        verdict = f"OK with {warned} warning(s)" if warned else "OK"
    return "\n".join([*lines, verdict])


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one check found, and the value later checks build on (None when there is none)."""

    status: Status
    detail: str
    value: T | None = None


class Problem(Exception):
    """A finding that fails the running check; the message says what is wrong and what to do."""


def ok(detail: str, value: T) -> Outcome[T]:
    """Return a passing outcome carrying `value`."""
    return Outcome(Status.PASS, detail, value)


def quote(value: object) -> str:
    """Return a short, printable rendering of a value taken from the bundle."""
    # JSON escapes control characters, so hostile names cannot drive the reader's terminal.
    if isinstance(value, str):
        return json.dumps(_shorten(value), ensure_ascii=False)
    return _shorten(json.dumps(value, default=str))


def names(found: Sequence[str]) -> str:
    """Return the first few names quoted, and how many more there are."""
    shown = ", ".join(quote(name) for name in found[:_MAX_LISTED])
    more = len(found) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def when(moment: datetime) -> str:
    """Return a moment as a UTC timestamp for people."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "..."
