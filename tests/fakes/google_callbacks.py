"""Sign Google Wallet callbacks as Google does (ECv2SigningOnly), with a throwaway key chain.

A root key (what Google publishes) signs an intermediate key, which signs the message;
both with ECDSA P-256 / SHA-256 over length-prefixed strings (4-byte little-endian
lengths), as walletsvc/google/callback.py's docstring and Google's payment data
cryptography page describe. Tests can break any link of the chain.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDER = "GooglePayPasses"
PROTOCOL = "ECv2SigningOnly"


def _lv(*chunks: str) -> bytes:
    return b"".join(struct.pack("<I", len(c.encode())) + c.encode() for c in chunks)


def _spki(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


class CallbackSigner:
    """Google's side of the callback: a root key, an intermediate key, signed envelopes."""

    def __init__(self) -> None:
        self.root = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = ec.generate_private_key(ec.SECP256R1())

    def write_root_keys(self, path: Path, expires_ms: int | None = None) -> Path:
        key: dict[str, Any] = {"keyValue": _spki(self.root), "protocolVersion": PROTOCOL}
        key["keyExpiration"] = str(expires_ms or now_ms() + 86_400_000)
        path.write_text(json.dumps({"keys": [key]}))
        return path

    def envelope(
        self,
        *,
        recipient: str,
        object_id: str,
        class_id: str,
        event: str = "save",
        nonce: str = "nonce-1",
        message_expires_ms: int | None = None,
        key_expires_ms: int | None = None,
        root: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict[str, Any]:
        message = json.dumps(
            {
                "classId": class_id,
                "objectId": object_id,
                "expTimeMillis": message_expires_ms or now_ms() + 60_000,
                "eventType": event,
                "count": 1,
                "nonce": nonce,
            }
        )
        signed_key = json.dumps(
            {
                "keyValue": _spki(self.intermediate),
                "keyExpiration": str(key_expires_ms or now_ms() + 3_600_000),
            }
        )
        return {
            "protocolVersion": PROTOCOL,
            "signature": _sign(self.intermediate, _lv(SENDER, recipient, PROTOCOL, message)),
            "intermediateSigningKey": {
                "signedKey": signed_key,
                "signatures": [_sign(root or self.root, _lv(SENDER, PROTOCOL, signed_key))],
            },
            "signedMessage": message,
        }
