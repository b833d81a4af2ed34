"""Commit-ordered counters (see CounterRow for why a sequence is not enough)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.storage.tables import CounterRow

PASS_UPDATE = "pass_update"


async def next_value(session: AsyncSession, name: str) -> int:
    """Return the counter's next value; its row stays locked until the transaction ends."""
    bump = (
        update(CounterRow)
        .where(col(CounterRow.name) == name)
        .values(value=col(CounterRow.value) + 1)
        .returning(col(CounterRow.value))
    )
    value = (await session.exec(bump)).scalar_one_or_none()
    if value is None:
        await _create(session, name)
        value = (await session.exec(bump)).scalar_one()
    return int(value)


async def claim_interval(session: AsyncSession, name: str, now_s: int, every_s: int) -> bool:
    """Return True for the one caller that may run the job `name` now.

    The counter holds when the job last started (epoch seconds); a caller claims the
    run by moving it forward, which only one of several processes can do per interval
    (a concurrent claimer waits on the row and then finds the new value).
    """
    await _create(session, name)
    claim = (
        update(CounterRow)
        .where(col(CounterRow.name) == name, col(CounterRow.value) <= now_s - every_s)
        .values(value=now_s)
        .returning(col(CounterRow.value))
    )
    return (await session.exec(claim)).scalar_one_or_none() is not None


async def _create(session: AsyncSession, name: str) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    create = (
        dialect.insert(CounterRow.__table__)  # type: ignore[attr-defined]
        .values(name=name, value=0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    await session.exec(create)
