"""Conversions between table rows and domain objects."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from walletsvc.domain.customer import Consents, Customer
from walletsvc.domain.program import AppleDesign, GoogleSettings, Program, Tier
from walletsvc.domain.store import Store
from walletsvc.domain.wallet_pass import Coupon, PassKind, PassState, WalletPass
from walletsvc.storage.tables import CustomerRow, PassRow, ProgramRow, StoreRow


def aware(value: datetime) -> datetime:
    """Return `value` as UTC; SQLite hands datetimes back without their zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def program_to_row(program: Program) -> ProgramRow:
    assert program.created_at is not None and program.updated_at is not None
    return ProgramRow(
        id=program.id,
        name=program.name,
        points_per_unit=str(program.points_per_unit),
        tiers=[{"name": t.name, "min_points": t.min_points} for t in program.tiers],
        apple=asdict(program.apple),
        google=asdict(program.google),
        design_version=program.design_version,
        created_at=program.created_at,
        updated_at=program.updated_at,
    )


def program_from_row(row: ProgramRow) -> Program:
    return Program(
        id=row.id,
        name=row.name,
        tiers=tuple(Tier(name=t["name"], min_points=int(t["min_points"])) for t in row.tiers),
        points_per_unit=Decimal(row.points_per_unit),
        apple=AppleDesign(**row.apple),
        google=GoogleSettings(**row.google),
        design_version=row.design_version,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def customer_from_row(row: CustomerRow) -> Customer:
    return Customer(
        id=row.id,
        program_id=row.program_id,
        external_id=row.external_id,
        consents=Consents(location=row.location_consent, marketing=row.marketing_consent),
        points_balance=row.points_balance,
        tier=row.tier,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def customer_into_row(customer: Customer, row: CustomerRow) -> None:
    assert customer.updated_at is not None
    row.location_consent = customer.consents.location
    row.marketing_consent = customer.consents.marketing
    row.points_balance = customer.points_balance
    row.tier = customer.tier
    row.updated_at = customer.updated_at


def coupon_to_json(coupon: Coupon | None) -> dict[str, Any] | None:
    if coupon is None:
        return None
    return {
        "title": coupon.title,
        "description": coupon.description,
        "discount": coupon.discount,
        "expires_at": coupon.expires_at.isoformat() if coupon.expires_at else None,
    }


def coupon_from_json(value: dict[str, Any] | None) -> Coupon | None:
    if value is None:
        return None
    expires = value.get("expires_at")
    return Coupon(
        title=value["title"],
        description=value.get("description"),
        discount=value.get("discount"),
        expires_at=aware(datetime.fromisoformat(expires)) if expires else None,
    )


def pass_from_row(row: PassRow, token: str) -> WalletPass:
    return WalletPass(
        serial=row.serial,
        program_id=row.program_id,
        customer_id=row.customer_id,
        kind=PassKind(row.kind),
        authentication_token=token,
        state=PassState(row.state),
        coupon=coupon_from_json(row.coupon),
        void_reason=row.void_reason,
        version=row.version,
        content_hash=row.content_hash,
        last_changed_at=aware(row.last_changed_at),
        created_at=aware(row.created_at),
    )


def store_from_row(row: StoreRow) -> Store:
    return Store(
        id=row.id,
        program_id=row.program_id,
        name=row.name,
        latitude=row.latitude,
        longitude=row.longitude,
        radius_m=row.radius_m,
        created_at=aware(row.created_at),
    )
