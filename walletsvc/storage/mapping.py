"""Conversions between table rows and domain objects."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from walletsvc.domain.customer import Consents, Customer
from walletsvc.domain.program import (
    AppleDesign,
    BarcodeFormat,
    DowngradePolicy,
    FieldGroup,
    GoogleSettings,
    LocalizedText,
    LoyaltyPolicy,
    PassField,
    Program,
    Tier,
)
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
        tiers=[tier_to_json(tier) for tier in program.tiers],
        apple=apple_design_to_json(program.apple),
        google=asdict(program.google),
        loyalty=loyalty_policy_to_json(program.loyalty),
        design_version=program.design_version,
        created_at=program.created_at,
        updated_at=program.updated_at,
    )


def program_from_row(row: ProgramRow) -> Program:
    return Program(
        id=row.id,
        name=row.name,
        tiers=tuple(tier_from_json(tier) for tier in row.tiers),
        points_per_unit=Decimal(row.points_per_unit),
        apple=apple_design_from_json(row.apple),
        google=GoogleSettings(**row.google),
        loyalty=loyalty_policy_from_json(row.loyalty or {}),
        design_version=row.design_version,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def loyalty_policy_to_json(policy: LoyaltyPolicy) -> dict[str, Any]:
    return {
        "downgrade": policy.downgrade.value,
        "qualification_days": policy.qualification_days,
        "points_expiry_days": policy.points_expiry_days,
    }


def loyalty_policy_from_json(value: dict[str, Any]) -> LoyaltyPolicy:
    default = LoyaltyPolicy()
    expiry = value.get("points_expiry_days")
    return LoyaltyPolicy(
        downgrade=DowngradePolicy(value.get("downgrade", default.downgrade.value)),
        qualification_days=int(value.get("qualification_days", default.qualification_days)),
        points_expiry_days=int(expiry) if expiry is not None else None,
    )


def tier_to_json(tier: Tier) -> dict[str, Any]:
    value: dict[str, Any] = {"name": tier.name, "min_points": tier.min_points}
    if tier.display_name is not None:
        value["display_name"] = text_to_json(tier.display_name)
    return value


def tier_from_json(value: dict[str, Any]) -> Tier:
    display = value.get("display_name")
    return Tier(
        name=value["name"],
        min_points=int(value["min_points"]),
        display_name=text_from_json(display) if display is not None else None,
    )


def text_to_json(text: LocalizedText) -> dict[str, Any]:
    return {"en": text.en, "de": text.de}


def text_from_json(value: dict[str, Any] | str) -> LocalizedText:
    if isinstance(value, str):
        return LocalizedText(value)
    return LocalizedText(en=value["en"], de=value.get("de"))


def apple_design_to_json(design: AppleDesign) -> dict[str, Any]:
    """Return the design as stored in the programs table's JSON column."""
    return {
        "pass_type_identifier": design.pass_type_identifier,
        "team_identifier": design.team_identifier,
        "organization_name": design.organization_name,
        "description": design.description,
        "logo_text": design.logo_text,
        "background_color": design.background_color,
        "foreground_color": design.foreground_color,
        "label_color": design.label_color,
        "barcode_format": design.barcode_format.value,
        "barcode_alt_text": design.barcode_alt_text,
        "fields": [
            {
                "key": extra.key,
                "group": extra.group.value,
                "label": text_to_json(extra.label),
                "value": extra.value,
            }
            for extra in design.fields
        ],
        "location_store_ids": list(design.location_store_ids),
        "location_text": design.location_text,
    }


def apple_design_from_json(value: dict[str, Any]) -> AppleDesign:
    """Return the stored design; keys a row written before they existed take their defaults."""
    defaults = AppleDesign("", "", "", "")
    return AppleDesign(
        pass_type_identifier=value["pass_type_identifier"],
        team_identifier=value["team_identifier"],
        organization_name=value["organization_name"],
        description=value["description"],
        logo_text=value.get("logo_text"),
        background_color=value.get("background_color", defaults.background_color),
        foreground_color=value.get("foreground_color", defaults.foreground_color),
        label_color=value.get("label_color", defaults.label_color),
        barcode_format=BarcodeFormat(value.get("barcode_format", defaults.barcode_format)),
        barcode_alt_text=value.get("barcode_alt_text"),
        fields=tuple(
            PassField(
                key=extra["key"],
                group=FieldGroup(extra["group"]),
                label=text_from_json(extra["label"]),
                value=extra["value"],
            )
            for extra in value.get("fields", ())
        ),
        location_store_ids=tuple(value.get("location_store_ids", ())),
        location_text=value.get("location_text", defaults.location_text),
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
        merged_into=row.merged_into,
        tier_floor=row.tier_floor,
    )


def customer_into_row(customer: Customer, row: CustomerRow) -> None:
    assert customer.updated_at is not None
    row.location_consent = customer.consents.location
    row.marketing_consent = customer.consents.marketing
    row.points_balance = customer.points_balance
    row.tier = customer.tier
    row.updated_at = customer.updated_at
    row.merged_into = customer.merged_into
    row.tier_floor = customer.tier_floor


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
