"""Retention: delete what has served its purpose, so tables stop growing without end.

Delivered events, the dedupe keys of old scans and webhooks, Apple Wallet's log
messages and Google notice counts older than their windows. Nothing still owed is
touched (storage/retention.py). It runs once per interval across all processes,
through the same claim row pattern as the loyalty review, in batches of short
transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from walletsvc.services.context import ServiceContext
from walletsvc.services.ports import Retention
from walletsvc.services.worker import run_rounds

log = structlog.get_logger("walletsvc.retention")

JOB = "retention"
BATCH = 1000
# Google allows 3 notifying messages per pass in 24 hours; older notices count for nothing.
GOOGLE_NOTICE_WINDOW = timedelta(days=2)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of record is kept."""

    events: timedelta
    inbox: timedelta
    apple_logs: timedelta
    # No event sink is configured: events are never handed on, so age alone decides.
    no_sinks: bool = False


@dataclass
class PruneReport:
    """How many rows each step removed."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def prune(
    ctx: ServiceContext, policy: RetentionPolicy, now: datetime | None = None
) -> PruneReport:
    """Remove everything older than the policy allows; return what was removed."""
    now = now or ctx.clock()
    steps: list[tuple[str, Callable[[Retention, int], Awaitable[int]]]] = [
        (
            "events",
            lambda r, n: r.prune_events(now - policy.events, n, undistributed=policy.no_sinks),
        ),
        ("inbox", lambda r, n: r.prune_inbox(now - policy.inbox, n)),
        ("apple_logs", lambda r, n: r.prune_apple_logs(now - policy.apple_logs, n)),
        ("google_notices", lambda r, n: r.prune_google_notices(now - GOOGLE_NOTICE_WINDOW, n)),
    ]
    report = PruneReport()
    for name, step in steps:
        removed = 0
        while True:
            async with ctx.uow() as uow:
                done = await step(uow.retention, BATCH)
                await uow.commit()
            removed += done
            if done < BATCH:
                break
        report.counts[name] = removed
    return report


async def run_retention(
    ctx: ServiceContext, policy: RetentionPolicy, stop: asyncio.Event, every_s: int
) -> None:
    """Prune at most once per `every_s` across all processes, until `stop` is set."""

    async def round_() -> bool:
        async with ctx.uow() as uow:
            mine = await uow.schedule.claim(JOB, ctx.clock(), every_s)
            await uow.commit()
        if mine:
            report = await prune(ctx, policy)
            log.info("retention.pruned", **report.counts)
        return False

    idle_s = min(every_s, 300) / 2  # wake well within the interval: the claim sets the pace
    await run_rounds(round_, stop, idle_s=idle_s, log=log, failure="retention.failed")
