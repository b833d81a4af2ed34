"""Deliver the pushes owed to devices: claim from the durable queue, push, settle.

The reply policy is PROTOCOLS.md section 2: a dead token loses its registrations, a
busy or failing APNs is retried with exponential back-off and jitter, and a
configuration error (wrong certificate or topic) is reported and retried slowly as a
whole rather than hammered token by token.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from walletsvc.domain.event import DomainEvent, EventType
from walletsvc.domain.push import PushJob, PushOutcome, PushReply
from walletsvc.services.context import ServiceContext
from walletsvc.services.ports import PushSender, UnitOfWork
from walletsvc.services.worker import run_rounds

log = structlog.get_logger("walletsvc.push")


@dataclass(frozen=True)
class PushPolicy:
    """How the worker batches and backs off."""

    batch: int = 500
    lease: timedelta | None = None  # None: the configured claim lease (ctx.push_lease)
    first_retry: timedelta = timedelta(seconds=5)
    max_retry: timedelta = timedelta(hours=1)
    misconfigured_retry: timedelta = timedelta(minutes=15)
    idle_wait_s: float = 0.5


async def deliver_due_pushes(
    ctx: ServiceContext, sender: PushSender, policy: PushPolicy | None = None
) -> Counter[PushOutcome]:
    """Push one batch of due pushes and settle each by its reply; return the outcomes."""
    policy = policy or PushPolicy()
    async with ctx.uow() as uow:
        lease = policy.lease or ctx.push_lease
        jobs = await uow.push_queue.claim(ctx.clock(), lease, policy.batch)
        await uow.commit()
    outcomes: Counter[PushOutcome] = Counter()
    if not jobs:
        return outcomes
    by_topic: dict[str, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_topic[job.pass_type_id].append(job)
    for topic, topic_jobs in by_topic.items():
        replies = await sender.send(topic, [job.push_token for job in topic_jobs])
        async with ctx.uow() as uow:
            for job, reply in zip(topic_jobs, replies, strict=True):
                await _settle(ctx, uow, policy, job, reply)
                outcomes[reply.outcome] += 1
            await uow.commit()
        if outcomes[PushOutcome.MISCONFIGURED]:
            log.error(
                "apns.misconfigured",
                topic=topic,
                count=outcomes[PushOutcome.MISCONFIGURED],
                reason=next(r.reason for r in replies if r.outcome is PushOutcome.MISCONFIGURED),
                hint="check the Pass Type ID certificate or APNs key for this pass type",
            )
    return outcomes


async def run_push_worker(
    ctx: ServiceContext, sender: PushSender, stop: asyncio.Event, policy: PushPolicy | None = None
) -> None:
    """Deliver pushes until `stop` is set; a failing round is logged and retried."""
    chosen = policy or PushPolicy()

    async def round_() -> bool:
        outcomes = await deliver_due_pushes(ctx, sender, chosen)
        return sum(outcomes.values()) >= chosen.batch

    await run_rounds(round_, stop, idle_s=chosen.idle_wait_s, log=log, failure="push.round.failed")


async def _settle(
    ctx: ServiceContext, uow: UnitOfWork, policy: PushPolicy, job: PushJob, reply: PushReply
) -> None:
    now = ctx.clock()
    if reply.outcome is PushOutcome.DELIVERED:
        await uow.push_queue.settle(job)
    elif reply.outcome is PushOutcome.UNREGISTERED:
        await uow.push_queue.drop(job)
        for serial, customer_id in await uow.apple_devices.forget_push_token(
            job.pass_type_id, job.push_token
        ):
            await uow.outbox.add(_removed(serial, customer_id, reply, now))
    elif reply.outcome is PushOutcome.RETRY:
        await uow.push_queue.postpone(job, _retry_at(policy, job, reply, now), _error(reply))
    else:
        await uow.push_queue.postpone(job, now + policy.misconfigured_retry, _error(reply))


def _retry_at(policy: PushPolicy, job: PushJob, reply: PushReply, now: datetime) -> datetime:
    if reply.retry_after_s is not None:
        return now + timedelta(seconds=reply.retry_after_s)
    ceiling = min(policy.max_retry, policy.first_retry * (2**job.attempts))
    # Full jitter: retries from many devices spread out instead of arriving together.
    low, high = policy.first_retry.total_seconds(), ceiling.total_seconds()
    return now + timedelta(seconds=random.uniform(low, high))  # noqa: S311  (not a secret)


def _error(reply: PushReply) -> str:
    return f"{reply.status or 'no answer'} {reply.reason or ''}".strip()[:200]


def _removed(serial: str, customer_id: str, reply: PushReply, now: datetime) -> DomainEvent:
    return DomainEvent(
        type=EventType.PASS_REMOVED,
        subject=customer_id,
        data={
            "customer_id": customer_id,
            "serial": serial,
            "platform": "apple",
            "cause": f"apns_{(reply.reason or 'unregistered').lower()}",
        },
        occurred_at=now,
    )
