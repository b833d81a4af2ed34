"""Read vendor payloads defensively: every surprise becomes a MalformedWebhook.

Part of the adapter contract: POS adapters read headers, JSON bodies, timestamps and
amounts only through these, so a wrong type or a missing field in a vendor's payload
is a 422 with a named field, never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from walletsvc.domain.errors import MalformedWebhook

CURRENCY = re.compile(r"[A-Z]{3}")
# ISO 4217 currencies whose minor unit is not the cent; every other has 2 decimals.
MINOR_UNIT_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"),
        0,
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Return a header's value, its name matched without regard to case."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def json_object(body: bytes) -> dict[str, Any]:
    """Return the body as a JSON object."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return document


def member(document: Mapping[str, Any], key: str, *, field: str) -> dict[str, Any]:
    """Return a required nested object."""
    value = document.get(key)
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{field} must be an object", field=field)
    return value


def optional_member(document: Mapping[str, Any], key: str, *, field: str) -> dict[str, Any] | None:
    """Return a nested object, or None when it is absent or null."""
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{field} must be an object", field=field)
    return value


def items_of(document: Mapping[str, Any], key: str, *, field: str) -> list[Any]:
    """Return a list member; absent or null reads as empty."""
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedWebhook(f"{field} must be a list", field=field)
    return value


def text(document: Mapping[str, Any], key: str, *, field: str) -> str:
    """Return a required non-empty string."""
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedWebhook(f"{field} must be a non-empty string", field=field)
    return value


def optional_text(document: Mapping[str, Any], key: str, *, field: str) -> str | None:
    """Return a string, or None when absent, null or blank."""
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedWebhook(f"{field} must be a string", field=field)
    return value if value.strip() else None


def identifier(document: Mapping[str, Any], key: str, *, field: str) -> str | None:
    """Return an id given as a string or an integer (Shopify's ids are numbers)."""
    value = document.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedWebhook(f"{field} must be a string or an integer", field=field)
    return str(value) if str(value).strip() else None


def timestamp(value: object, *, field: str) -> datetime:
    """Return an ISO 8601 / RFC 3339 time with its zone (Z, +00:00 or +0000)."""
    if not isinstance(value, str) or len(value) > 64:
        raise MalformedWebhook(f"{field} must be an ISO 8601 time", field=field)
    try:
        # From 3.11 fromisoformat reads RFC 3339 with Z and cuts nanoseconds to micro.
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedWebhook(f"{field} must be an ISO 8601 time", field=field) from None
    if parsed.utcoffset() is None:
        raise MalformedWebhook(f"{field} needs a time zone", field=field)
    return parsed


def optional_timestamp(document: Mapping[str, Any], key: str, *, field: str) -> datetime | None:
    """Return a time member, or None when absent or null."""
    value = document.get(key)
    return None if value is None else timestamp(value, field=field)


def currency_code(value: object, *, field: str) -> str:
    """Return an ISO 4217 code."""
    if not isinstance(value, str) or not CURRENCY.fullmatch(value):
        raise MalformedWebhook(f"{field} must be an ISO 4217 code", field=field)
    return value


def from_minor_units(amount: object, currency: str, *, field: str) -> Decimal:
    """Return an amount given in the currency's smallest unit (cents) as a Decimal."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MalformedWebhook(f"{field} must be an integer of minor units", field=field)
    exponent = MINOR_UNIT_EXPONENTS.get(currency, 2)
    return Decimal(amount).scaleb(-exponent)


def decimal_amount(value: object, *, field: str) -> Decimal:
    """Return an amount given as a decimal string or a JSON number, exactly as written."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedWebhook(f"{field} must be a decimal amount", field=field)
    try:
        # str() first: a float's shortest repr is what the sender wrote (12.5, not 12.4999...).
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise MalformedWebhook(f"{field} must be a decimal amount", field=field) from None
    if not amount.is_finite():
        raise MalformedWebhook(f"{field} must be a decimal amount", field=field)
    return amount
