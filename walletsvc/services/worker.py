"""The loop every background worker runs: rounds until stopped, a failing round retried."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


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
    as idle, so a broken dependency is retried at the idle pace, not in a hot loop.
    """
    while not stop.is_set():
        try:
            busy = await round_()
        except Exception:
            log.exception(failure)
            busy = False
        if not busy:
            try:
                await asyncio.wait_for(stop.wait(), timeout=idle_s)
            except TimeoutError:
                pass
