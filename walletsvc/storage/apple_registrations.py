"""Apple Wallet devices, their pass registrations, and the pushes they are owed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import DateTime, Integer, delete, func, literal
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from walletsvc.domain.apple_device import ChangedPasses
from walletsvc.storage.tables import (
    AppleDeviceRow,
    AppleLogRow,
    ApplePushRow,
    AppleRegistrationRow,
    PassRow,
)


class SqlAppleDeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def register(
        self, device_id: str, push_token: str, pass_type_id: str, serial: str, now: datetime
    ) -> bool:
        """Register the pass on the device; True when the registration is new."""
        device = await self._session.get(AppleDeviceRow, device_id)
        if device is None:
            self._session.add(
                AppleDeviceRow(
                    device_library_id=device_id,
                    push_token=push_token,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif device.push_token != push_token:
            # One token per device: a new token replaces the old for every pass on it.
            device.push_token = push_token
            device.updated_at = now
            self._session.add(device)
        key = (device_id, pass_type_id, serial)
        if await self._session.get(AppleRegistrationRow, key) is not None:
            return False
        self._session.add(
            AppleRegistrationRow(
                device_library_id=device_id,
                pass_type_id=pass_type_id,
                serial=serial,
                created_at=now,
            )
        )
        await self._session.flush()
        return True

    async def unregister(self, device_id: str, pass_type_id: str, serial: str) -> bool:
        """Remove the registration; True when there was one. A device left with none goes."""
        row = await self._session.get(AppleRegistrationRow, (device_id, pass_type_id, serial))
        if row is None:
            return False
        await self._session.delete(row)
        await self._session.flush()
        left = await self._session.exec(
            select(func.count())
            .select_from(AppleRegistrationRow)
            .where(AppleRegistrationRow.device_library_id == device_id)
        )
        if left.one() == 0:
            # The push token identifies a phone; keep it no longer than it is needed.
            await self._session.exec(
                delete(AppleDeviceRow).where(col(AppleDeviceRow.device_library_id) == device_id)
            )
        return True

    async def changed(self, device_id: str, pass_type_id: str, since: int | None) -> ChangedPasses:
        """Return every serial on the device changed after `since`, and the newest tag."""
        query = (
            select(PassRow.serial, PassRow.update_tag)
            .join(AppleRegistrationRow, col(AppleRegistrationRow.serial) == col(PassRow.serial))
            .where(
                AppleRegistrationRow.device_library_id == device_id,
                AppleRegistrationRow.pass_type_id == pass_type_id,
            )
        )
        rows = (await self._session.exec(query)).all()
        newest = max((tag for _, tag in rows), default=0)
        serials = sorted(serial for serial, tag in rows if since is None or tag > since)
        return ChangedPasses(tuple(serials), max(newest, since or 0))

    async def installs(self, serial: str) -> int:
        """Return on how many devices the pass is registered."""
        result = await self._session.exec(
            select(func.count())
            .select_from(AppleRegistrationRow)
            .where(AppleRegistrationRow.serial == serial)
        )
        return int(result.one())

    async def queue_pushes(self, serial: str, due_at: datetime) -> None:
        """Owe a push to every device the pass is on; pending pushes absorb this one."""
        targets = (
            sa_select(
                col(AppleRegistrationRow.pass_type_id),
                col(AppleDeviceRow.push_token),
                literal(1, Integer()),
                literal(0, Integer()),
                literal(due_at, DateTime(timezone=True)),
            )
            .join(
                AppleDeviceRow,
                col(AppleDeviceRow.device_library_id)
                == col(AppleRegistrationRow.device_library_id),
            )
            .where(col(AppleRegistrationRow.serial) == serial)
        )
        dialect = postgresql if self._session.get_bind().dialect.name == "postgresql" else sqlite
        table = ApplePushRow.__table__  # type: ignore[attr-defined]
        insert = dialect.insert(table).from_select(
            ["pass_type_id", "push_token", "generation", "attempts", "due_at"], targets
        )
        # The due time stays as first set: a stream of changes must not postpone the push.
        statement = insert.on_conflict_do_update(
            index_elements=["pass_type_id", "push_token"],
            set_={"generation": table.c.generation + 1},
        )
        await self._session.exec(statement)

    async def add_logs(self, messages: Sequence[str], now: datetime) -> None:
        """Keep what Wallet reported about our web service."""
        for message in messages:
            self._session.add(AppleLogRow(received_at=now, message=message))

    async def prune_logs(self, keep: int) -> None:
        """Drop all but the newest `keep` log records."""
        newest = select(AppleLogRow.id).order_by(col(AppleLogRow.id).desc()).offset(keep).limit(1)
        cutoff = (await self._session.exec(newest)).first()
        if cutoff is not None:
            await self._session.exec(delete(AppleLogRow).where(col(AppleLogRow.id) <= cutoff))

    async def forget_push_token(self, pass_type_id: str, push_token: str) -> list[tuple[str, str]]:
        """Drop the registrations behind a token APNs called dead; return (serial, customer)."""
        devices = select(AppleDeviceRow.device_library_id).where(
            AppleDeviceRow.push_token == push_token
        )
        gone = (
            await self._session.exec(
                select(AppleRegistrationRow.serial, PassRow.customer_id)
                .join(PassRow, col(PassRow.serial) == col(AppleRegistrationRow.serial))
                .where(
                    AppleRegistrationRow.pass_type_id == pass_type_id,
                    col(AppleRegistrationRow.device_library_id).in_(devices),
                )
            )
        ).all()
        await self._session.exec(
            delete(AppleRegistrationRow).where(
                col(AppleRegistrationRow.pass_type_id) == pass_type_id,
                col(AppleRegistrationRow.device_library_id).in_(devices),
            )
        )
        still_used = select(AppleRegistrationRow.device_library_id).distinct()
        await self._session.exec(
            delete(AppleDeviceRow).where(
                col(AppleDeviceRow.push_token) == push_token,
                col(AppleDeviceRow.device_library_id).not_in(still_used),
            )
        )
        return [(serial, customer) for serial, customer in gone]
