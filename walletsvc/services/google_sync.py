"""Keep Google Wallet objects in step with the passes: queue a sync, and a worker to send it.

Every content change of a pass (services/pass_changes.save_pass) and every issue owes
one sync of the pass's object; changes before it goes out coalesce on one queue row,
so a burst costs one PATCH. The worker writes the program's class when it changed,
then patches (or inserts) the object, and tells the holder about a new tier with a
message, notifying only within Google's 3 notices per 24 hours (counted in the
database). Google refusing a design is kept on the row for the operator; the Apple
side never waits for any of this.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from walletsvc.domain.errors import (
    ConfigurationError,
    NotFound,
    WalletRejected,
    WalletUnavailable,
)
from walletsvc.domain.google_wallet import NOTICE_WINDOW, NOTICES_PER_WINDOW, GoogleJob
from walletsvc.domain.program import Program
from walletsvc.domain.wallet_pass import PassKind, WalletPass
from walletsvc.services.context import ServiceContext
from walletsvc.services.pass_render import pass_content
from walletsvc.services.ports import UnitOfWork, WalletObjectStore
from walletsvc.services.worker import run_rounds

log = structlog.get_logger("walletsvc.google")

# A notified tier change costs two notices: the field-change push of the PATCH
# (notifyPreference) and the TEXT_AND_NOTIFY message.
_NOTICES_PER_TIER_CHANGE = 2


@dataclass(frozen=True)
class GooglePolicy:
    """How the worker batches, spreads and backs off."""

    batch: int = 100
    concurrency: int = 8
    lease: timedelta = timedelta(seconds=120)
    first_retry: timedelta = timedelta(seconds=5)
    max_retry: timedelta = timedelta(hours=1)
    misconfigured_retry: timedelta = timedelta(minutes=15)
    idle_wait_s: float = 0.25


async def queue_google_sync(
    ctx: ServiceContext, uow: UnitOfWork, program: Program, wallet_pass: WalletPass
) -> None:
    """Owe a sync of the pass's Google object, when its program has a Google issuer."""
    issuer = program.google.issuer_id
    if issuer:
        await uow.google_objects.queue(wallet_pass.serial, issuer, ctx.clock() + ctx.google_delay)


async def deliver_google_syncs(
    ctx: ServiceContext, wallet: WalletObjectStore, policy: GooglePolicy | None = None
) -> Counter[str]:
    """Sync one batch of due objects; return how many ended which way."""
    policy = policy or GooglePolicy()
    async with ctx.uow() as uow:
        jobs = await uow.google_objects.claim(ctx.clock(), policy.lease, policy.batch)
        await uow.commit()
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(policy.concurrency)

    async def one(job: GoogleJob) -> None:
        async with gate:
            outcomes[await _sync(ctx, wallet, policy, job)] += 1

    await asyncio.gather(*(one(job) for job in jobs))
    return outcomes


async def run_google_worker(
    ctx: ServiceContext,
    wallet: WalletObjectStore,
    stop: asyncio.Event,
    policy: GooglePolicy | None = None,
) -> None:
    """Sync objects until `stop` is set; a failing round is logged and retried."""
    chosen = policy or GooglePolicy()

    async def round_() -> bool:
        outcomes = await deliver_google_syncs(ctx, wallet, chosen)
        return sum(outcomes.values()) >= chosen.batch

    await run_rounds(
        round_, stop, idle_s=chosen.idle_wait_s, log=log, failure="google.round.failed"
    )


async def _sync(
    ctx: ServiceContext, wallet: WalletObjectStore, policy: GooglePolicy, job: GoogleJob
) -> str:
    now = ctx.clock()
    async with ctx.uow() as uow:
        held = await uow.passes.get_with_holder(job.serial)
        stores = await uow.stores.for_program(held[1].id) if held else []
        used = await uow.google_objects.notices_since(job.serial, now - NOTICE_WINDOW)
    if held is None:
        return "gone"
    wallet_pass, program, customer = held
    issuer = program.google.issuer_id
    try:
        if not issuer:
            raise WalletRejected("the program has no Google issuer any more", field="google")
        await _ensure_class(ctx, wallet, issuer, program, wallet_pass.kind)
        content = pass_content(ctx, program, customer, wallet_pass, stores)
        resource = wallet.render_object(content)
        tier = customer.tier if wallet_pass.kind is PassKind.LOYALTY else None
        tier_changed = job.inserted and job.last_tier is not None and tier != job.last_tier
        notify = tier_changed and used + _NOTICES_PER_TIER_CHANGE <= NOTICES_PER_WINDOW
        await wallet.put_object(issuer, resource, exists=job.inserted, notify=notify)
        if tier_changed:
            message = wallet.tier_message(content, now, notify=notify)
            await wallet.add_message(issuer, resource, message)
    except WalletRejected as error:
        log.warning(
            "google.object.rejected", serial=job.serial, error=error.detail, field=error.field
        )
        async with ctx.uow() as uow:
            await uow.google_objects.fail(job, error.detail, error.field, ctx.clock())
            await uow.commit()
        return "rejected"
    except ConfigurationError as error:
        log.error("google.misconfigured", detail=error.detail)
        await _postpone(ctx, job, now + policy.misconfigured_retry, "misconfigured")
        return "misconfigured"
    except WalletUnavailable as error:
        await _postpone(ctx, job, _retry_at(policy, job, error.retry_after_s, now), error.detail)
        return "retry"
    except Exception as error:
        log.exception("google.sync.failed", serial=job.serial)
        await _postpone(ctx, job, _retry_at(policy, job, None, now), type(error).__name__)
        return "retry"
    async with ctx.uow() as uow:
        if notify:
            for _ in range(_NOTICES_PER_TIER_CHANGE):
                await uow.google_objects.add_notice(job.serial, now)
        await uow.google_objects.settle(job, tier, ctx.clock())
        await uow.commit()
    return "synced"


async def _ensure_class(
    ctx: ServiceContext, wallet: WalletObjectStore, issuer: str, program: Program, kind: PassKind
) -> None:
    resource = wallet.render_class(program, kind)
    async with ctx.uow() as uow:
        if await uow.google_objects.class_digest(resource.id) == resource.digest:
            return
    await wallet.put_class(issuer, resource)
    async with ctx.uow() as uow:
        await uow.google_objects.set_class_digest(resource.id, resource.digest, ctx.clock())
        await uow.commit()


async def _postpone(ctx: ServiceContext, job: GoogleJob, due_at: datetime, error: str) -> None:
    async with ctx.uow() as uow:
        await uow.google_objects.postpone(job, due_at, error)
        await uow.commit()


def _retry_at(
    policy: GooglePolicy, job: GoogleJob, retry_after_s: float | None, now: datetime
) -> datetime:
    if retry_after_s is not None:
        return now + timedelta(seconds=retry_after_s)
    ceiling = min(policy.max_retry, policy.first_retry * (2**job.attempts))
    low, high = policy.first_retry.total_seconds(), ceiling.total_seconds()
    # Full jitter, as for Apple pushes: retries of many passes spread out.
    return now + timedelta(seconds=random.uniform(low, high))  # noqa: S311  (not a secret)


async def program_logo(ctx: ServiceContext, program_id: str) -> bytes:
    """Return the logo a program's Google class shows: its own, else the placeholder."""
    async with ctx.uow() as uow:
        program = await uow.programs.get(program_id)
        if program is None or not program.google.issuer_id:
            raise NotFound("no such program")
        assets = await uow.programs.assets(program_id)
    # Google wants a larger image than Apple's 1x logo; the 3x one is the largest kept.
    for name in ("logo@3x.png", "logo@2x.png", "logo.png"):
        if name in assets:
            return assets[name]
    return ctx.apple.default_assets(program)["logo@3x.png"]
