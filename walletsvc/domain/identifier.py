"""Identifiers that point at a customer, and how personal ones are kept unreadable.

Emails and phone numbers are never stored: only a keyed hash of their normalised
form, so that the same address links the same person without the service holding it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from walletsvc.domain.errors import InvalidInput

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class IdentifierKind(StrEnum):
    """The kinds of identifier a profile can be found by."""

    EXTERNAL_ID = "external_id"
    EMAIL_HASH = "email_sha256"
    PHONE_HASH = "phone_sha256"
    PASS_SERIAL = "pass_serial"
    POS_CUSTOMER = "pos_customer"  # "<adapter>:<the vendor's customer id>"


@dataclass(frozen=True)
class Identifier:
    """A link from an identifier value to a customer, with where it came from."""

    kind: IdentifierKind
    value: str
    source: str
    created_at: datetime | None = None


def normalize_email(email: str) -> str:
    """Return the address trimmed and lower-cased, or refuse one that is not an address."""
    value = email.strip().lower()
    if len(value) > 254 or not EMAIL.fullmatch(value):
        raise InvalidInput("email is not a valid address", field="email")
    return value


def normalize_phone(phone: str) -> str:
    """Return the number in E.164 form (+4915112345678), or refuse it."""
    value = re.sub(r"[\s()./-]", "", phone.strip())
    if value.startswith("00"):
        value = "+" + value[2:]
    if not PHONE.fullmatch(value):
        raise InvalidInput(
            "phone must be an international number such as +49 151 12345678", field="phone"
        )
    return value


def hash_identifier(pepper: bytes, kind: IdentifierKind, normalized: str) -> str:
    """Return the keyed SHA-256 of a normalised personal identifier, as hex."""
    message = f"{kind.value}:{normalized}".encode()
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()
