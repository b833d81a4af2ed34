"""Apple's rules for pass.json, checked before a pass is signed (pure: no I/O).

Sources: the Pass dictionary and its sub-objects
(https://developer.apple.com/documentation/walletpasses/pass), PassFieldContent
(https://developer.apple.com/documentation/walletpasses/passfieldcontent) and the field
limits of the Wallet developer guide ("Pass Design and Creation"). A violation raises
InvalidInput (the program's design breaks the rule) or ConfigurationError (the deployment
does), with reason "apple_rule" and a message naming the rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from walletsvc.domain.errors import ConfigurationError, InvalidInput
from walletsvc.domain.program import RGB

REASON = "apple_rule"
REQUIRED_KEYS = (
    "formatVersion",
    "passTypeIdentifier",
    "serialNumber",
    "teamIdentifier",
    "organizationName",
    "description",
)
# Keys this service fills in itself; their absence is a deployment problem, not a design's.
_OWN_KEYS = frozenset({"formatVersion", "serialNumber"})
STYLE_KEYS = ("boardingPass", "coupon", "eventTicket", "generic", "storeCard")
FIELD_GROUPS = ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields")
BARCODE_FORMATS = frozenset(
    {"PKBarcodeFormatQR", "PKBarcodeFormatPDF417", "PKBarcodeFormatAztec", "PKBarcodeFormatCode128"}
)
_SQUARE_BARCODES = frozenset({"PKBarcodeFormatQR", "PKBarcodeFormatAztec"})
COLOUR_KEYS = ("backgroundColor", "foregroundColor", "labelColor")
MAX_LOCATIONS = 10
MAX_BEACONS = 10
MIN_TOKEN_LENGTH = 16
# Front-of-pass limits from the developer guide: three header fields, one primary field,
# four secondary and four auxiliary fields; coupons, store cards and generic passes with a
# square barcode show at most four secondary and auxiliary fields together.
_GROUP_LIMITS = {"headerFields": 3, "primaryFields": 1, "secondaryFields": 4, "auxiliaryFields": 4}
_COMBINED_LIMIT_STYLES = frozenset({"coupon", "storeCard", "generic"})
# PassKit drops a relevantDates interval longer than a day without a word.
_MAX_RELEVANT_INTERVAL = timedelta(hours=24)


def check_pass(
    document: Mapping[str, Any],
    strings: Mapping[str, Mapping[str, str]],
    *,
    require_https: bool = False,
) -> None:
    """Refuse a pass.json that breaks one of Apple's rules; `strings` maps language -> table."""
    _check_required(document)
    style = _style_key(document)
    fields = list(_fields(document[style]))
    _check_fields(style, fields, document)
    _check_colours(document)
    _check_barcodes(document)
    _check_relevance(document)
    _check_web_service(document, require_https=require_https)
    _check_localization(document, fields, strings)


def design_rule(detail: str) -> InvalidInput:
    """Return the error for a rule the program's design breaks."""
    return InvalidInput(detail, reason=REASON, field="apple")


def deployment_rule(detail: str) -> ConfigurationError:
    """Return the error for a rule the deployment breaks."""
    return ConfigurationError(detail, reason=REASON)


def _check_required(document: Mapping[str, Any]) -> None:
    for key in REQUIRED_KEYS:
        value = document.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            error = deployment_rule if key in _OWN_KEYS else design_rule
            raise error(f"pass.json lacks the required key {key!r}")
    if document["formatVersion"] != 1:
        raise deployment_rule("pass.json formatVersion must be 1")


def _style_key(document: Mapping[str, Any]) -> str:
    styles = [key for key in STYLE_KEYS if key in document]
    if len(styles) != 1:
        raise design_rule(
            f"a pass needs exactly one style key of {', '.join(STYLE_KEYS)}, "
            f"not {len(styles)} ({', '.join(styles) or 'none'})"
        )
    if not isinstance(document[styles[0]], Mapping):
        raise design_rule(f"the style key {styles[0]!r} must hold an object of field groups")
    return styles[0]


def _fields(style: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for group in FIELD_GROUPS:
        for field in style.get(group, ()):
            yield group, field


def _check_fields(
    style: str, fields: list[tuple[str, Mapping[str, Any]]], document: Mapping[str, Any]
) -> None:
    seen: set[str] = set()
    for _group, field in fields:
        key = field.get("key")
        if not isinstance(key, str) or not key:
            raise design_rule("every field needs a non-empty 'key'")
        if key in seen:
            raise design_rule(f"field key {key!r} is used twice (Apple requires unique keys)")
        seen.add(key)
        if "value" not in field:
            raise design_rule(f"field {key!r} has no value (Apple requires one)")
        message = field.get("changeMessage")
        if message is not None and "%@" not in str(message):
            raise design_rule(
                f"changeMessage of field {key!r} lacks %@ (Apple puts the new value there)"
            )
    counts = {group: sum(1 for name, _ in fields if name == group) for group in _GROUP_LIMITS}
    for group, limit in _GROUP_LIMITS.items():
        if counts[group] > limit:
            raise design_rule(f"{style} has {counts[group]} {group}; Apple shows at most {limit}")
    barcodes = document.get("barcodes") or [{}]
    square = barcodes[0].get("format") in _SQUARE_BARCODES
    front = counts["secondaryFields"] + counts["auxiliaryFields"]
    if style in _COMBINED_LIMIT_STYLES and square and front > 4:
        raise design_rule(
            f"{style} with a square barcode has {front} secondary and auxiliary fields; "
            "Apple shows at most 4 of them together"
        )


def _check_colours(document: Mapping[str, Any]) -> None:
    for key in COLOUR_KEYS:
        if key not in document:
            continue
        match = RGB.fullmatch(str(document[key]))
        if match is None or any(int(part) > 255 for part in match.groups()):
            raise design_rule(f"{key} must be a CSS-style 'rgb(r, g, b)' with 0-255")


def _check_barcodes(document: Mapping[str, Any]) -> None:
    for barcode in document.get("barcodes", ()):
        if barcode.get("format") not in BARCODE_FORMATS:
            raise design_rule(
                f"barcode format {barcode.get('format')!r} is not one of "
                f"{', '.join(sorted(BARCODE_FORMATS))}"
            )
        if not barcode.get("message") or not barcode.get("messageEncoding"):
            raise deployment_rule("a barcode needs a message and a messageEncoding")


def _check_relevance(document: Mapping[str, Any]) -> None:
    locations = document.get("locations", ())
    if len(locations) > MAX_LOCATIONS:
        raise design_rule(f"a pass has {len(locations)} locations; Apple allows at most 10")
    for location in locations:
        if not _number(location.get("latitude")) or not _number(location.get("longitude")):
            raise design_rule("every location needs a numeric latitude and longitude")
    beacons = document.get("beacons", ())
    if len(beacons) > MAX_BEACONS:
        raise design_rule(f"a pass has {len(beacons)} beacons; Apple allows at most 10")
    for interval in document.get("relevantDates", ()):
        if "date" in interval:
            continue
        try:
            start = datetime.fromisoformat(interval["startDate"])
            end = datetime.fromisoformat(interval["endDate"])
        except (KeyError, TypeError, ValueError):
            raise design_rule(
                "a relevantDates entry needs a date, or a startDate with an endDate"
            ) from None
        if not timedelta(0) < end - start <= _MAX_RELEVANT_INTERVAL:
            raise design_rule(
                "a relevantDates interval must end after it starts and last at most 24 hours "
                "(Wallet drops longer ones)"
            )


def _check_web_service(document: Mapping[str, Any], *, require_https: bool) -> None:
    url, token = document.get("webServiceURL"), document.get("authenticationToken")
    if url is None and token is None:
        return
    if not isinstance(url, str) or not isinstance(token, str):
        raise deployment_rule("webServiceURL and authenticationToken come together or not at all")
    if require_https and not url.startswith("https://"):
        raise deployment_rule("webServiceURL must use https outside development")
    if len(token) < MIN_TOKEN_LENGTH:
        raise deployment_rule("authenticationToken must be at least 16 characters")


def _check_localization(
    document: Mapping[str, Any],
    fields: list[tuple[str, Mapping[str, Any]]],
    strings: Mapping[str, Mapping[str, str]],
) -> None:
    texts: list[tuple[str, str]] = [
        (name, str(document[name]))
        for name in ("organizationName", "description", "logoText")
        if name in document
    ]
    for _group, field in fields:
        key = field["key"]
        texts += [
            (f"{part} of field {key!r}", field[part])
            for part in ("label", "value", "changeMessage")
            if isinstance(field.get(part), str)
        ]
    for where, text in texts:
        # A text that some table translates is a localization key: every table must have it,
        # or devices in that language would show the bare key.
        holders = [language for language, table in strings.items() if text in table]
        if not holders:
            continue
        missing = sorted(set(strings) - set(holders))
        if missing:
            raise design_rule(
                f"localization key {text!r} ({where}) is missing from "
                f"{missing[0]}.lproj/pass.strings"
            )
        if where.startswith("changeMessage"):
            for language in holders:
                if "%@" not in strings[language][text]:
                    raise design_rule(
                        f"{where} translates to a text without %@ in "
                        f"{language}.lproj/pass.strings (Apple puts the new value there)"
                    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
