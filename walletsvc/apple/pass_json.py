"""Render what a pass shows into Apple's pass.json.

Follows Apple's "Pass" dictionary reference
(https://developer.apple.com/documentation/walletpasses/pass). Output is
deterministic for the same content, so its hash tells whether a pass really
changed (Wallet must not be told about passes that did not).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.wallet_pass import PassKind, PassState


class PassJsonRenderer:
    """Turns PassContent into pass.json bytes for one deployment's web service URL."""

    def __init__(self, web_service_url: str) -> None:
        self._web_service_url = web_service_url

    def render(self, content: PassContent) -> bytes:
        """Return the pass.json bytes for `content`."""
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
            "barcodes": [
                {
                    "format": "PKBarcodeFormatQR",
                    "message": content.barcode_message,
                    "messageEncoding": "iso-8859-1",
                }
            ],
        }
        if design.logo_text:
            document["logoText"] = design.logo_text
        if wallet_pass.kind is PassKind.LOYALTY:
            document["storeCard"] = _store_card(content)
        else:
            document.update(_coupon(content))
        if wallet_pass.state is not PassState.ACTIVE:
            document["voided"] = True
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _store_card(content: PassContent) -> dict[str, Any]:
    customer = content.customer
    return {
        "headerFields": [
            {
                "key": "tier",
                "label": "Tier",
                "value": customer.tier,
                "changeMessage": "Your tier is now %@",
            }
        ],
        "primaryFields": [
            {
                "key": "balance",
                "label": "Points",
                "value": customer.points_balance,
                "changeMessage": "You now have %@ points",
            }
        ],
        "backFields": [
            {"key": "program", "label": "Program", "value": content.program.name},
        ],
    }


def _coupon(content: PassContent) -> dict[str, Any]:
    coupon = content.wallet_pass.coupon
    assert coupon is not None
    fields: dict[str, Any] = {
        "primaryFields": [
            {
                "key": "offer",
                "label": coupon.title,
                "value": coupon.discount or coupon.title,
                "changeMessage": "Your offer is now %@",
            }
        ],
    }
    document: dict[str, Any] = {"coupon": fields}
    if coupon.description:
        fields["backFields"] = [{"key": "details", "label": "Details", "value": coupon.description}]
    if coupon.expires_at is not None:
        expires = _w3c(coupon.expires_at)
        fields["auxiliaryFields"] = [
            {
                "key": "expires",
                "label": "Valid until",
                "value": expires,
                "dateStyle": "PKDateStyleMedium",
                "timeStyle": "PKDateStyleNone",
            }
        ]
        document["expirationDate"] = expires
    return document


def _w3c(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()
