"""A background worker through an outage: one traceback, then one line a round, backing off."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from walletsvc.services.worker import run_rounds


class _Log:
    """Records what the worker logged, as structlog would receive it."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def exception(self, event: str, **kw: Any) -> None:
        self.lines.append(("exception", event, kw))

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))


async def test_an_outage_logs_one_traceback_then_one_line_a_round_then_recovery() -> None:
    stop = asyncio.Event()
    log = _Log()
    calls: list[float] = []

    async def round_() -> bool:
        calls.append(time.monotonic())
        if len(calls) <= 4:
            raise ConnectionRefusedError("the database is down")
        stop.set()
        return False

    await asyncio.wait_for(
        run_rounds(round_, stop, idle_s=0.01, log=log, failure="w.failed"), timeout=5
    )
    assert log.lines == [
        ("exception", "w.failed", {}),
        ("warning", "w.failed", {"error": "ConnectionRefusedError", "in_a_row": 2}),
        ("warning", "w.failed", {"error": "ConnectionRefusedError", "in_a_row": 3}),
        ("warning", "w.failed", {"error": "ConnectionRefusedError", "in_a_row": 4}),
        ("info", "w.failed.recovered", {"failed_rounds": 4}),
    ]
    # The waits double while it fails (10, 20, 40, 80 ms), so the last was at least 80
    # ms, where an idle pace of 10 ms would have retried eight times.
    assert calls[4] - calls[3] >= 0.079


async def test_a_busy_round_runs_the_next_at_once_and_a_failure_after_recovery_is_new() -> None:
    stop = asyncio.Event()
    log = _Log()
    script = iter([True, ValueError("bad row"), False, ValueError("again")])

    async def round_() -> bool:
        step = next(script, None)
        if step is None:
            stop.set()
            return False
        if isinstance(step, Exception):
            raise step
        return step

    await asyncio.wait_for(
        run_rounds(round_, stop, idle_s=0.001, log=log, failure="w.failed"), timeout=5
    )
    # Each failure after a success starts a new run: logged with its traceback again.
    assert [level for level, _, _ in log.lines] == ["exception", "info", "exception", "info"]
