"""The loop every background worker runs: rounds until stopped, a failing round retried."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# While rounds keep failing (the database down, say), the wait between them doubles
# up to this, so a dozen workers in each of several processes do not hammer a server
# that is restarting; a worker with a longer idle pace keeps its own.
MAX_FAILING_WAIT_S = 10.0


async def run_rounds(
    round_: Callable[[], Awaitable[bool]],
    stop: asyncio.Event,
    *,
    idle_s: float,
    log: Any,
    failure: str,
) -> None:
    """Run `round_` until `stop` is set.

    A round returns True when there may be more work at once; otherwise the loop waits
    `idle_s` (or until stopped). A round that raises is logged as `failure` and counts
    as idle, so a broken dependency is retried, not spun on. The first failure of a run
    of them is logged with its traceback; the ones after it as one line each (the
    error's type and how many in a row), since an outage would otherwise print the
    same traceback every round; the first success after them logs `failure.recovered`.
    """
    failures = 0
    while not stop.is_set():
        try:
            busy = await round_()
        except Exception as error:
            failures += 1
            if failures == 1:
                log.exception(failure)
            else:
                log.warning(failure, error=type(error).__name__, in_a_row=failures)
            busy = False
        else:
            if failures:
                log.info(f"{failure}.recovered", failed_rounds=failures)
                failures = 0
        if not busy:
            wait = idle_s
            if failures:
                wait = max(idle_s, min(idle_s * 2 ** (failures - 1), MAX_FAILING_WAIT_S))
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
