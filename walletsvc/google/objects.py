"""Render Google Wallet classes and objects from what a pass shows.

Each serializer follows Google's REST reference:
- LoyaltyClass: https://developers.google.com/wallet/reference/rest/v1/loyaltyclass
- LoyaltyObject: https://developers.google.com/wallet/reference/rest/v1/loyaltyobject
- OfferClass: https://developers.google.com/wallet/reference/rest/v1/offerclass
- OfferObject: https://developers.google.com/wallet/reference/rest/v1/offerobject
- LocalizedString, Barcode, TimeInterval, MerchantLocation, Message: the shared types at
  https://developers.google.com/wallet/reference/rest/v1/

Objects never carry `messages`: a PATCH replaces whole arrays, and sending ours would
wipe what addMessage added. Texts come in English (the default) and German.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from walletsvc.domain.google_wallet import class_id, object_id
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import (
    BarcodeFormat,
    LocalizedText,
    Program,
    fill_template,
    rgb_triple,
)
from walletsvc.domain.store import choose_pass_locations
from walletsvc.domain.wallet_pass import PassKind, PassState
from walletsvc.services.ports import GoogleResource

MAX_MERCHANT_LOCATIONS = 10  # Google reads at most 10 merchantLocations

POINTS = LocalizedText("Points", "Punkte")
TIER = LocalizedText("Tier", "Stufe")
PROGRAM = LocalizedText("Program", "Programm")
DETAILS = LocalizedText("Details", "Details")
OFFER = LocalizedText("Offer", "Angebot")
TIER_CHANGED_HEADER = LocalizedText("New tier", "Neue Stufe")
TIER_CHANGED_BODY = LocalizedText("Your tier is now {tier}", "Ihre Stufe ist jetzt {tier}")

# Barcode.type values (https://developers.google.com/wallet/reference/rest/v1/BarcodeType).
BARCODE_TYPE = {
    BarcodeFormat.QR: "QR_CODE",
    BarcodeFormat.PDF417: "PDF_417",
    BarcodeFormat.AZTEC: "AZTEC",
    BarcodeFormat.CODE128: "CODE_128",
}
# State (https://developers.google.com/wallet/reference/rest/v1/State).
OBJECT_STATE = {
    PassState.ACTIVE: "ACTIVE",
    PassState.VOIDED: "INACTIVE",
    PassState.REDEEMED: "COMPLETED",
    PassState.EXPIRED: "EXPIRED",
}


def localized(text: LocalizedText) -> dict[str, Any]:
    """Return a LocalizedString: English by default, German as a translation."""
    value: dict[str, Any] = {"defaultValue": {"language": "en", "value": text.en}}
    if text.de and text.de != text.en:
        value["translatedValues"] = [{"language": "de", "value": text.de}]
    return value


def render_class(
    program: Program, kind: PassKind, *, public_url: str, logo_url: str
) -> GoogleResource:
    """Return the LoyaltyClass or OfferClass of a program's passes of `kind`."""
    identifier = class_id(program, kind)
    assert identifier is not None, "only programs with a Google issuer have classes"
    design = program.apple
    issuer_name = LocalizedText(design.organization_name)
    body: dict[str, Any] = {
        "id": identifier,
        "issuerName": issuer_name.en,
        "localizedIssuerName": localized(issuer_name),
        "reviewStatus": "UNDER_REVIEW",
        "hexBackgroundColor": _hex(design.background_color),
        "callbackOptions": {"url": f"{public_url}/google/callback"},
    }
    if kind is PassKind.LOYALTY:
        name = LocalizedText(program.name)
        body.update(
            programName=name.en,
            localizedProgramName=localized(name),
            programLogo={
                "sourceUri": {"uri": logo_url},
                "contentDescription": localized(LocalizedText(program.name)),
            },
        )
    else:
        title = LocalizedText(f"{program.name}: offers", f"{program.name}: Angebote")
        body.update(
            title=title.en,
            localizedTitle=localized(title),
            provider=design.organization_name,
            localizedProvider=localized(issuer_name),
            redemptionChannel="INSTORE",
        )
    return _resource(_collection(kind, "Class"), identifier, body)


def render_object(content: PassContent) -> GoogleResource:
    """Return the LoyaltyObject or OfferObject of one pass."""
    program, wallet_pass = content.program, content.wallet_pass
    identifier = object_id(program, wallet_pass.serial)
    klass = class_id(program, wallet_pass.kind)
    assert identifier is not None and klass is not None
    body: dict[str, Any] = {
        "id": identifier,
        "classId": klass,
        "state": OBJECT_STATE[wallet_pass.state],
        "barcode": _barcode(content),
        "textModulesData": _text_modules(content),
        "merchantLocations": _merchant_locations(content),
    }
    if wallet_pass.kind is PassKind.LOYALTY:
        customer = content.customer
        tier = next((t for t in program.tiers if t.name == customer.tier), None)
        tier_text = tier.shown if tier is not None else LocalizedText(customer.tier or "-")
        body["loyaltyPoints"] = {
            "label": POINTS.en,
            "localizedLabel": localized(POINTS),
            "balance": {"int": customer.points_balance},
        }
        body["secondaryLoyaltyPoints"] = {
            "label": TIER.en,
            "localizedLabel": localized(TIER),
            "balance": {"string": tier_text.en},
        }
    coupon = wallet_pass.coupon
    interval: dict[str, Any] = {}
    if wallet_pass.created_at is not None:
        interval["start"] = {"date": _rfc3339(wallet_pass.created_at)}
    if coupon is not None and coupon.expires_at is not None:
        interval["end"] = {"date": _rfc3339(coupon.expires_at)}
    if interval:
        body["validTimeInterval"] = interval
    return _resource(_collection(wallet_pass.kind, "Object"), identifier, body)


def tier_message(content: PassContent, now: datetime, *, notify: bool) -> dict[str, Any]:
    """Return the AddMessageRequest telling the holder their new tier.

    TEXT_AND_NOTIFY only while the pass has notices left (Google allows 3 per 24 hours);
    else TEXT, which shows on the pass without a notification.
    """
    program, customer = content.program, content.customer
    tier = next((t for t in program.tiers if t.name == customer.tier), None)
    shown = tier.shown if tier is not None else LocalizedText(customer.tier)
    body = LocalizedText(
        fill_template(TIER_CHANGED_BODY.en, {"tier": shown.en}),
        fill_template(TIER_CHANGED_BODY.de or "", {"tier": shown.in_language("de")}),
    )
    return {
        "message": {
            # Milliseconds: two syncs of one pass within a second must not share an id.
            "id": f"tier-{int(now.timestamp() * 1000)}",
            "header": TIER_CHANGED_HEADER.en,
            "localizedHeader": localized(TIER_CHANGED_HEADER),
            "body": body.en,
            "localizedBody": localized(body),
            "messageType": "TEXT_AND_NOTIFY" if notify else "TEXT",
        }
    }


def _barcode(content: PassContent) -> dict[str, Any]:
    # The same value and symbology as the Apple pass, so every till reads both.
    design = content.program.apple
    barcode: dict[str, Any] = {
        "type": BARCODE_TYPE[design.barcode_format],
        "value": content.barcode_message,
    }
    if design.barcode_alt_text:
        barcode["alternateText"] = fill_template(design.barcode_alt_text, _placeholders(content))
    return barcode


def _text_modules(content: PassContent) -> list[dict[str, Any]]:
    program, wallet_pass = content.program, content.wallet_pass
    modules: list[dict[str, Any]] = []
    coupon = wallet_pass.coupon
    if coupon is not None:
        offer = coupon.discount or coupon.title
        modules.append(_module("offer", LocalizedText(coupon.title), LocalizedText(offer)))
        if coupon.description:
            modules.append(_module("details", DETAILS, LocalizedText(coupon.description)))
    else:
        modules.append(_module("program", PROGRAM, LocalizedText(program.name)))
    values = _placeholders(content)
    for extra in program.apple.fields:
        modules.append(
            _module(extra.key, extra.label, LocalizedText(fill_template(extra.value, values)))
        )
    return modules


def _module(key: str, header: LocalizedText, body: LocalizedText) -> dict[str, Any]:
    return {
        "id": key,
        "header": header.en,
        "localizedHeader": localized(header),
        "body": body.en,
        "localizedBody": localized(body),
    }


def _merchant_locations(content: PassContent) -> list[dict[str, float]]:
    design = content.program.apple
    stores = choose_pass_locations(
        content.stores, content.home_store_id, design.location_store_ids, MAX_MERCHANT_LOCATIONS
    )
    return [{"latitude": store.latitude, "longitude": store.longitude} for store in stores]


def _placeholders(content: PassContent) -> dict[str, str]:
    return {
        "points": str(content.customer.points_balance),
        "tier": content.customer.tier,
        "program": content.program.name,
        "serial": content.wallet_pass.serial,
    }


def _hex(rgb: str) -> str:
    r, g, b = rgb_triple(rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _collection(kind: PassKind, what: str) -> str:
    return ("loyalty" if kind is PassKind.LOYALTY else "offer") + what


def _resource(collection: str, identifier: str, body: dict[str, Any]) -> GoogleResource:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return GoogleResource(collection, identifier, body, digest)
