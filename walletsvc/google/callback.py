"""Verify Google Wallet's save and delete callbacks (ECv2SigningOnly).

The scheme is Google's "payment data cryptography" signing-only variant as used for
pass callbacks (https://developers.google.com/wallet/generic/use-cases/use-callbacks-for-saves-and-deletions
and https://developers.google.com/pay/api/web/guides/resources/payment-data-cryptography):

- one of Google's root keys (ECDSA P-256, from configuration) signs the intermediate
  key: the signed bytes are LV(sender id) || LV(protocol version) || LV(signedKey);
- the intermediate key, valid until its keyExpiration, signs the message: the signed
  bytes are LV(sender id) || LV(recipient id) || LV(protocol version) || LV(signedMessage);
- LV(x) is the 4-byte little-endian length of the UTF-8 bytes of x, then those bytes;
  signatures are DER ECDSA with SHA-256, base64-encoded;
- the sender id is "GooglePayPasses", the recipient id is our issuer id, taken from
  configuration and never from the message; the message expires at expTimeMillis.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from walletsvc.domain.errors import ConfigurationError, MalformedWebhook, Unauthorized
from walletsvc.domain.google_wallet import CallbackEvent, GoogleCallback

SENDER_ID = "GooglePayPasses"
PROTOCOL_VERSION = "ECv2SigningOnly"


class CallbackRejected(Unauthorized):
    """A callback whose signature, key chain, expiry or address does not hold up."""

    reason = "callback_rejected"


def length_value(*chunks: str) -> bytes:
    """Return each chunk as a 4-byte little-endian length and its UTF-8 bytes, joined."""
    out = bytearray()
    for chunk in chunks:
        data = chunk.encode()
        out += struct.pack("<I", len(data)) + data
    return bytes(out)


@dataclass(frozen=True)
class RootKey:
    key: ec.EllipticCurvePublicKey
    expires_ms: int | None


class RootKeyFile:
    """Google's root signing keys, read from a file and re-read whenever it changes.

    The file has the shape Google publishes ({"keys": [{"keyValue", "protocolVersion",
    "keyExpiration"}]}); replacing it (write a new file, then rename it over the old)
    is how the keys are refreshed, with no restart: see docs/google-wallet.md.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: tuple[RootKey, ...] = ()
        self.keys()

    def keys(self) -> tuple[RootKey, ...]:
        """Return the keys of the file as it is now."""
        try:
            stat = self._path.stat()
        except OSError as exc:
            raise ConfigurationError(
                f"the Google callback root keys file {self._path} is missing; "
                "set WALLETSVC_GOOGLE__ROOT_KEYS_FILE (docs/google-wallet.md)"
            ) from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._keys = _parse_root_keys(self._path)
            self._stamp = stamp
        return self._keys


def _parse_root_keys(path: Path) -> tuple[RootKey, ...]:
    try:
        document = json.loads(path.read_text())
        keys = []
        for item in document["keys"]:
            if item.get("protocolVersion") != PROTOCOL_VERSION:
                continue
            expiration = item.get("keyExpiration")
            keys.append(RootKey(_public_key(item["keyValue"]), _int(expiration)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"the Google callback root keys file {path} is not Google's key list "
            f'({{"keys": [{{"keyValue", "protocolVersion", "keyExpiration"}}]}})'
        ) from exc
    if not keys:
        raise ConfigurationError(f"{path} holds no {PROTOCOL_VERSION} root key")
    return tuple(keys)


class CallbackVerifier:
    """Checks a callback end to end and returns what it reports."""

    def __init__(self, root_keys: RootKeyFile, recipient_id: str) -> None:
        self._root_keys = root_keys
        self._recipient_id = recipient_id

    def verify(self, body: bytes, now: datetime) -> GoogleCallback:
        """Return the verified callback; raise CallbackRejected or MalformedWebhook."""
        envelope = _object(_loads(body), "body")
        if envelope.get("protocolVersion") != PROTOCOL_VERSION:
            raise CallbackRejected("unsupported protocolVersion", reason="protocol_version")
        signature = _string(envelope, "signature")
        signed_message = _string(envelope, "signedMessage")
        intermediate = _object(envelope.get("intermediateSigningKey"), "intermediateSigningKey")
        signed_key = _string(intermediate, "signedKey")
        signatures = intermediate.get("signatures")
        if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures):
            raise MalformedWebhook("intermediateSigningKey.signatures must be a list of strings")
        now_ms = int(now.timestamp() * 1000)
        roots = [k for k in self._root_keys.keys() if k.expires_ms is None or k.expires_ms > now_ms]
        signed = length_value(SENDER_ID, PROTOCOL_VERSION, signed_key)
        if not any(_verifies(root.key, sig, signed) for root in roots for sig in signatures):
            raise CallbackRejected(
                "the intermediate key is not signed by a current Google root key",
                reason="intermediate_signature",
            )
        key_info = _object(_loads(signed_key.encode()), "signedKey")
        try:
            intermediate_key = _public_key(_string(key_info, "keyValue"))
        except (ValueError, TypeError) as exc:
            raise MalformedWebhook("signedKey.keyValue is not a P-256 public key") from exc
        expires = _int(key_info.get("keyExpiration"))
        if expires is None or expires <= now_ms:
            raise CallbackRejected(
                "the intermediate key has expired", reason="intermediate_expired"
            )
        signed = length_value(SENDER_ID, self._recipient_id, PROTOCOL_VERSION, signed_message)
        if not _verifies(intermediate_key, signature, signed):
            # Also what a message for another issuer looks like: it was signed for them.
            raise CallbackRejected(
                "the message signature does not hold for our issuer", reason="message_signature"
            )
        message = _object(_loads(signed_message.encode()), "signedMessage")
        expires = _int(message.get("expTimeMillis"))
        if expires is None or expires <= now_ms:
            raise CallbackRejected("the callback has expired", reason="message_expired")
        try:
            event = CallbackEvent(_string(message, "eventType"))
        except ValueError as exc:
            raise MalformedWebhook("eventType must be save or del", field="eventType") from exc
        return GoogleCallback(
            class_id=_string(message, "classId"),
            object_id=_string(message, "objectId"),
            event=event,
            nonce=_string(message, "nonce"),
            expires_at=datetime.fromtimestamp(expires / 1000, UTC),
        )


def _verifies(key: ec.EllipticCurvePublicKey, signature: str, data: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _public_key(value: str) -> ec.EllipticCurvePublicKey:
    key = load_der_public_key(base64.b64decode(value, validate=True))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 key")
    return key


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook("the callback is not JSON") from exc


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{where} must be a JSON object", field=where)
    return value


def _string(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value or len(value) > 10_000:
        raise MalformedWebhook(f"{name} must be a non-empty string", field=name)
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
