"""Render what a pass shows into Apple's pass.json, checked against Apple's rules.

Follows Apple's "Pass" dictionary reference
(https://developer.apple.com/documentation/walletpasses/pass). Output is
deterministic for the same content, so its hash tells whether a pass really
changed (Wallet must not be told about passes that did not).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from walletsvc.apple import strings as text
from walletsvc.apple.pass_rules import check_pass
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import BarcodeFormat, FieldGroup, fill_template
from walletsvc.domain.store import choose_pass_locations
from walletsvc.domain.wallet_pass import PassKind, PassState

APPLE_BARCODE_FORMAT = {
    BarcodeFormat.QR: "PKBarcodeFormatQR",
    BarcodeFormat.PDF417: "PKBarcodeFormatPDF417",
    BarcodeFormat.AZTEC: "PKBarcodeFormatAztec",
    BarcodeFormat.CODE128: "PKBarcodeFormatCode128",
}
_GROUP_KEY = {
    FieldGroup.SECONDARY: "secondaryFields",
    FieldGroup.AUXILIARY: "auxiliaryFields",
    FieldGroup.BACK: "backFields",
}
# Wallet drops a relevance interval longer than this, so a coupon is relevant on its last day.
_RELEVANT_WINDOW = timedelta(hours=24)


class PassJsonRenderer:
    """Turns PassContent into pass.json bytes for one deployment's web service URL."""

    def __init__(self, web_service_url: str, *, require_https: bool = False) -> None:
        self._web_service_url = web_service_url
        self._require_https = require_https

    def render(self, content: PassContent) -> bytes:
        """Return the pass.json bytes for `content`, refusing a pass that breaks Apple's rules."""
        document = self.document(content)
        check_pass(document, text.pass_strings(content.program), require_https=self._require_https)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def document(self, content: PassContent) -> dict[str, Any]:
        """Return the pass.json dictionary for `content`, unchecked."""
        program, wallet_pass = content.program, content.wallet_pass
        design = program.apple
        document: dict[str, Any] = {
            "formatVersion": 1,
            "passTypeIdentifier": design.pass_type_identifier,
            "serialNumber": wallet_pass.serial,
            "teamIdentifier": design.team_identifier,
            "organizationName": design.organization_name,
            "description": design.description,
            "backgroundColor": design.background_color,
            "foregroundColor": design.foreground_color,
            "labelColor": design.label_color,
            "webServiceURL": self._web_service_url,
            "authenticationToken": wallet_pass.authentication_token,
            "sharingProhibited": True,
            "barcodes": _barcodes(content),
        }
        if design.logo_text:
            document["logoText"] = design.logo_text
        if wallet_pass.kind is PassKind.LOYALTY:
            document["storeCard"] = _store_card(content)
        else:
            document.update(_coupon(content))
        active = wallet_pass.state is PassState.ACTIVE
        locations = _locations(content) if active else []
        if locations:
            document["locations"] = locations
        if not active:
            document["voided"] = True
        return document


def _placeholders(content: PassContent) -> dict[str, str]:
    return {
        "points": str(content.customer.points_balance),
        "tier": content.customer.tier,
        "program": content.program.name,
        "serial": content.wallet_pass.serial,
    }


def _barcodes(content: PassContent) -> list[dict[str, str]]:
    design = content.program.apple
    barcode = {
        "format": APPLE_BARCODE_FORMAT[design.barcode_format],
        "message": content.barcode_message,
        "messageEncoding": "iso-8859-1",
    }
    if design.barcode_alt_text:
        barcode["altText"] = fill_template(design.barcode_alt_text, _placeholders(content))
    barcodes = [barcode]
    if design.barcode_format is BarcodeFormat.CODE128:
        # Apple: "The barcode format PKBarcodeFormatCode128 isn't supported for watchOS" and
        # "The system uses the first displayable barcode for the device" (Pass.Barcodes and
        # Pass.barcodes), so a QR code after it is what an Apple Watch shows.
        barcodes.append({**barcode, "format": APPLE_BARCODE_FORMAT[BarcodeFormat.QR]})
    return barcodes


def _extra_fields(content: PassContent, fields: dict[str, list[dict[str, Any]]]) -> None:
    values = _placeholders(content)
    for extra in content.program.apple.fields:
        fields.setdefault(_GROUP_KEY[extra.group], []).append(
            {"key": extra.key, "label": extra.label.en, "value": fill_template(extra.value, values)}
        )


def _store_card(content: PassContent) -> dict[str, Any]:
    customer = content.customer
    fields: dict[str, list[dict[str, Any]]] = {
        "headerFields": [
            {
                "key": "tier",
                "label": text.TIER_LABEL,
                "value": customer.tier,
                "changeMessage": text.TIER_CHANGED,
            }
        ],
        "primaryFields": [
            {
                "key": "balance",
                "label": text.POINTS_LABEL,
                "value": customer.points_balance,
                "changeMessage": text.POINTS_CHANGED,
            }
        ],
        "backFields": [
            {"key": "program", "label": text.PROGRAM_LABEL, "value": content.program.name},
        ],
    }
    _extra_fields(content, fields)
    return fields


def _coupon(content: PassContent) -> dict[str, Any]:
    wallet_pass = content.wallet_pass
    coupon = wallet_pass.coupon
    assert coupon is not None
    fields: dict[str, list[dict[str, Any]]] = {
        "primaryFields": [
            {
                "key": "offer",
                "label": coupon.title,
                "value": coupon.discount or coupon.title,
                "changeMessage": text.OFFER_CHANGED,
            }
        ],
    }
    if coupon.description:
        fields["backFields"] = [
            {"key": "details", "label": text.DETAILS_LABEL, "value": coupon.description}
        ]
    document: dict[str, Any] = {"coupon": fields}
    if coupon.expires_at is not None:
        expires = _w3c(coupon.expires_at)
        fields["auxiliaryFields"] = [
            {
                "key": "expires",
                "label": text.EXPIRES_LABEL,
                "value": expires,
                "dateStyle": "PKDateStyleMedium",
                "timeStyle": "PKDateStyleNone",
            }
        ]
        document["expirationDate"] = expires
        if wallet_pass.state is PassState.ACTIVE:
            document.update(_relevant_dates(coupon.expires_at, wallet_pass.created_at))
    _extra_fields(content, fields)
    return document


def _relevant_dates(expires_at: datetime, issued_at: datetime | None) -> dict[str, Any]:
    # relevantDates replaces the deprecated relevantDate: the coupon comes up on the lock
    # screen during its last day, or from its issue when that is later.
    end = _second(expires_at)
    start = end - _RELEVANT_WINDOW
    if issued_at is not None:
        start = max(start, _second(issued_at))
    if start >= end:
        return {}
    return {"relevantDates": [{"startDate": start.isoformat(), "endDate": end.isoformat()}]}


def _locations(content: PassContent) -> list[dict[str, Any]]:
    design = content.program.apple
    stores = choose_pass_locations(content.stores, content.home_store_id, design.location_store_ids)
    return [
        {
            "latitude": store.latitude,
            "longitude": store.longitude,
            "relevantText": fill_template(
                design.location_text, {"store": store.name, "program": content.program.name}
            ),
        }
        for store in stores
    ]


def _second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _w3c(moment: datetime) -> str:
    return _second(moment).isoformat()
