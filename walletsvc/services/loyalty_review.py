"""The scheduled loyalty review: points expiry and tier downgrades, per the program's policy.

Upgrades happen the moment points move; only this review lowers a tier, and never
below the floor the loyalty engine set. Each customer is reviewed in a transaction of
its own with the row locked, so a review running beside a scan adds up with it, and
running the review twice on one day changes nothing the second time (expiry entries
are keyed by customer and day).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from walletsvc.domain.errors import DuplicateKey
from walletsvc.domain.ledger import EntryKind
from walletsvc.domain.program import DowngradePolicy, Program
from walletsvc.domain.tier import expiring_points, reviewed_tier
from walletsvc.services.context import ServiceContext
from walletsvc.services.loyalty import change_tier, move_points
from walletsvc.services.worker import run_rounds

log = structlog.get_logger("walletsvc.loyalty")

JOB = "loyalty_review"
BATCH = 200


@dataclass
class ReviewReport:
    """What one review of one program did."""

    program: str
    customers: int = 0
    tiers_changed: int = 0
    points_expired: int = 0


def needs_review(program: Program) -> bool:
    """Return whether the program's policy has anything for a review to do."""
    policy = program.loyalty
    return policy.downgrade is not DowngradePolicy.NEVER or policy.points_expiry_days is not None


async def review_program(ctx: ServiceContext, program_id: str) -> ReviewReport:
    """Expire old points and settle tiers for every customer of the program."""
    report = ReviewReport(program=program_id)
    now = ctx.clock()
    after = ""
    while True:
        async with ctx.uow() as uow:
            program = await uow.programs.get(program_id)
            ids = await uow.customers.page_ids(program_id, after, BATCH) if program else []
        if program is None or not ids:
            return report
        for customer_id in ids:
            try:
                await _review_customer(ctx, program, customer_id, now, report)
            except DuplicateKey:
                # Another process reviewed this customer today at the same moment.
                continue
            report.customers += 1
        after = ids[-1]


async def review_all(ctx: ServiceContext) -> list[ReviewReport]:
    """Review every program whose policy asks for it."""
    async with ctx.uow() as uow:
        programs = [p for p in await uow.programs.list() if needs_review(p)]
    return [await review_program(ctx, program.id) for program in programs]


async def run_loyalty_reviews(ctx: ServiceContext, stop: asyncio.Event, every_s: int) -> None:
    """Review at most once per `every_s` across all processes, until `stop` is set."""

    async def round_() -> bool:
        async with ctx.uow() as uow:
            mine = await uow.schedule.claim(JOB, ctx.clock(), every_s)
            await uow.commit()
        if mine:
            for report in await review_all(ctx):
                log.info(
                    "loyalty.review.done",
                    program=report.program,
                    customers=report.customers,
                    tiers_changed=report.tiers_changed,
                    points_expired=report.points_expired,
                )
        return False

    # Wake well within the interval: the claim, not this sleep, sets the pace.
    await run_rounds(
        round_, stop, idle_s=min(every_s, 300) / 2, log=log, failure="loyalty.review.failed"
    )


async def _review_customer(
    ctx: ServiceContext, program: Program, customer_id: str, now: datetime, report: ReviewReport
) -> None:
    policy = program.loyalty
    async with ctx.uow() as uow:
        customer = await uow.customers.get_for_update(customer_id)
        if customer is None or customer.merged_into is not None:
            return
        before = customer
        if policy.points_expiry_days is not None:
            cutoff = now - timedelta(days=policy.points_expiry_days)
            totals = await uow.ledger.totals(customer.id, cutoff)
            expired = expiring_points(totals, customer.points_balance)
            if expired:
                customer = await move_points(
                    ctx,
                    uow,
                    program,
                    customer,
                    kind=EntryKind.EXPIRE,
                    points=-expired,
                    business_key=f"expire:{customer.id}:{now.date().isoformat()}",
                    occurred_at=now,
                    source="review",
                    context={"source": "review", "earned_before": cutoff.isoformat()},
                )
                report.points_expired += expired
        earned = 0
        if policy.downgrade is DowngradePolicy.ROLLING:
            since = now - timedelta(days=policy.qualification_days)
            earned = await uow.ledger.earned_since(customer.id, since)
        tier = reviewed_tier(
            program,
            customer.tier,
            balance=customer.points_balance,
            earned_in_window=earned,
            floor=customer.tier_floor,
        )
        if tier != customer.tier:
            customer = await change_tier(
                ctx, uow, program, customer, tier, reason="review", occurred_at=now
            )
            report.tiers_changed += 1
        if customer != before:
            await uow.commit()
