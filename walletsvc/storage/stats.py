"""Counts for operators: queue depths, refusals, passes and tiers, read at scrape time.

Every figure is a GROUP BY over an indexed or small table; nothing here writes. Kept
apart from the repositories because it spans the whole schema and no use case needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from walletsvc.storage.tables import (
    ApplePushRow,
    CallbackRejectionRow,
    CustomerRow,
    GeofenceRefusalRow,
    GoogleObjectRow,
    InboxRow,
    PassRow,
)

_push = ApplePushRow.__table__  # type: ignore[attr-defined]
_google = GoogleObjectRow.__table__  # type: ignore[attr-defined]
_inbox = InboxRow.__table__  # type: ignore[attr-defined]
_callbacks = CallbackRejectionRow.__table__  # type: ignore[attr-defined]
_geofence = GeofenceRefusalRow.__table__  # type: ignore[attr-defined]
_passes = PassRow.__table__  # type: ignore[attr-defined]
_customers = CustomerRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OperationsSnapshot:
    """The service's state as an operator watches it."""

    apns_queue: int = 0
    google_queue: dict[str, int] = field(default_factory=dict)  # by state
    pos_webhooks_unprocessed: int = 0
    callback_rejections: dict[tuple[str, str], int] = field(default_factory=dict)
    geofence_refusals: dict[tuple[str, str], int] = field(default_factory=dict)
    passes: dict[tuple[str, str, str], int] = field(default_factory=dict)  # program, kind, state
    tiers: dict[tuple[str, str], int] = field(default_factory=dict)  # program, tier


class SqlStats:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def snapshot(self) -> OperationsSnapshot:
        """Return the current counts, in one read-only connection."""
        async with self._engine.connect() as conn:

            async def pairs(query: Any) -> list[Any]:
                return list((await conn.execute(query)).all())

            apns = (await conn.execute(select(func.count()).select_from(_push))).scalar_one()
            google = await pairs(select(_google.c.state, func.count()).group_by(_google.c.state))
            unprocessed = (
                await conn.execute(
                    select(func.count())
                    .select_from(_inbox)
                    .where(_inbox.c.source.like("pos:%"), _inbox.c.processed_at.is_(None))
                )
            ).scalar_one()
            callbacks = await pairs(
                select(_callbacks.c.source, _callbacks.c.reason, _callbacks.c.total)
            )
            geofence = await pairs(
                select(_geofence.c.program_id, _geofence.c.reason, _geofence.c.total)
            )
            passes = await pairs(
                select(
                    _passes.c.program_id, _passes.c.kind, _passes.c.state, func.count()
                ).group_by(_passes.c.program_id, _passes.c.kind, _passes.c.state)
            )
            tiers = await pairs(
                select(_customers.c.program_id, _customers.c.tier, func.count())
                .where(_customers.c.merged_into.is_(None), _customers.c.erased_at.is_(None))
                .group_by(_customers.c.program_id, _customers.c.tier)
            )
        return OperationsSnapshot(
            apns_queue=int(apns),
            google_queue={str(state): int(n) for state, n in google},
            pos_webhooks_unprocessed=int(unprocessed),
            callback_rejections={(str(s), str(r)): int(n) for s, r, n in callbacks},
            geofence_refusals={(str(p), str(r)): int(n) for p, r, n in geofence},
            passes={(str(p), str(k), str(s)): int(n) for p, k, s, n in passes},
            tiers={(str(p), str(t)): int(n) for p, t, n in tiers},
        )
