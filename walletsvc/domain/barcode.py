"""Pass barcodes that a till can read but nobody can forge or guess.

The barcode carries `W1.<key id>.<serial>.<mac>`: the MAC is a truncated
HMAC-SHA256 over the serial with a rotatable key, so a scanned code proves it came
from a pass this service issued, and a customer or loyalty number never appears in
it. Old keys stay in the key ring for verification while new passes use the current
one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.wallet_pass import is_serial

PREFIX = "W1"
MAC_CHARS = 16  # 80 bits of MAC: far beyond guessing at a till's scan rate


class ForgedBarcode(InvalidInput):
    """The barcode is well-formed but its MAC does not verify."""

    reason = "barcode_forged"


class MalformedBarcode(InvalidInput):
    """The barcode is not one this service issues."""

    reason = "barcode_malformed"


@dataclass(frozen=True)
class BarcodeKeyRing:
    """Keys by id; `current` signs new barcodes, all of them verify."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("the current barcode key id is not in the key ring")
        for key_id in self.keys:
            if not key_id.isalnum() or len(key_id) > 8:
                raise ValueError("barcode key ids are 1-8 letters or digits")


def _mac(key: bytes, serial: str) -> str:
    digest = hmac.new(key, f"walletsvc-barcode:{serial}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:MAC_CHARS]


def encode_barcode(ring: BarcodeKeyRing, serial: str) -> str:
    """Return the barcode message for a pass serial."""
    return f"{PREFIX}.{ring.current}.{serial}.{_mac(ring.keys[ring.current], serial)}"


def decode_barcode(ring: BarcodeKeyRing, message: str) -> str:
    """Return the serial a barcode message names, refusing malformed and forged ones."""
    parts = message.strip().split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not is_serial(parts[2]):
        raise MalformedBarcode("the barcode is not a walletsvc pass code", field="barcode")
    _, key_id, serial, mac = parts
    key = ring.keys.get(key_id)
    if key is None:
        raise ForgedBarcode("the barcode was signed with an unknown key", field="barcode")
    if not hmac.compare_digest(_mac(key, serial), mac.upper()):
        raise ForgedBarcode("the barcode does not verify", field="barcode")
    return serial
