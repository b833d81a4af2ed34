"""Bring every pass of a program up to its current design and stores, in the background.

A program update bumps `design_version`, a store change `stores_version` (passes list
the stores as locations); each process's worker looks for programs whose
passes are behind, and one of them (a claim row, with a lease in case it dies) re-renders
them in batches. Re-rendering is idempotent, so a refresh cut off half-way is simply
run again; the changed passes get a new version and their pushes.
"""

from __future__ import annotations

import asyncio

import structlog

from walletsvc.services.context import ServiceContext
from walletsvc.services.pass_changes import refresh_program_passes
from walletsvc.services.worker import run_rounds

log = structlog.get_logger("walletsvc.passes")

# How long a claimed refresh stays another process's before it is presumed dead.
LEASE_S = 600


async def refresh_pending_programs(ctx: ServiceContext) -> int:
    """Refresh the passes of every program that is behind its design; return passes changed."""
    async with ctx.uow() as uow:
        pending = await uow.programs.needing_refresh()
    changed = 0
    for program_id, point in pending:
        job = f"refresh:{program_id}"
        async with ctx.uow() as uow:
            mine = await uow.schedule.claim(job, ctx.clock(), LEASE_S)
            await uow.commit()
        if not mine:
            continue
        try:
            count = await refresh_program_passes(ctx, program_id)
            async with ctx.uow() as uow:
                await uow.programs.mark_refreshed(program_id, point)
                await uow.schedule.release(job)
                await uow.commit()
        except BaseException:
            async with ctx.uow() as uow:
                await uow.schedule.release(job)
                await uow.commit()
            raise
        log.info(
            "passes.refresh.done",
            program=program_id,
            version=point.design_version,
            stores_version=point.stores_version,
            changed=count,
        )
        changed += count
    return changed


async def run_program_refreshes(
    ctx: ServiceContext, stop: asyncio.Event, idle_s: float = 2.0
) -> None:
    """Keep passes in step with their program's design until `stop` is set."""

    async def round_() -> bool:
        await refresh_pending_programs(ctx)
        return False

    await run_rounds(round_, stop, idle_s=idle_s, log=log, failure="passes.refresh.failed")
