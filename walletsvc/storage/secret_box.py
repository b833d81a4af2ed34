"""Encryption at rest for secrets the service must read back (terminal secrets, pass tokens)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    """Seals and opens small secrets with keys derived from the service's secret key.

    Several keys may be given: the first seals, all of them open, so the secret key
    can be rotated without losing what was sealed before.
    """

    def __init__(self, secret_keys: list[bytes]) -> None:
        if not secret_keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(_derive(key)) for key in secret_keys])
        # Opening is an HMAC and an AES decryption (~20 us); every scan opens the
        # terminal's secret and the pass's token. A sealed value always opens to the
        # same text, so what was opened is kept, bounded.
        self._opened: dict[str, str] = {}

    def seal(self, plaintext: str) -> str:
        """Return `plaintext` encrypted and authenticated."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """Return what `seal` sealed; a wrong key or tampering raises ValueError."""
        opened = self._opened.get(sealed)
        if opened is not None:
            return opened
        try:
            opened = self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a sealed secret could not be opened with the configured keys"
            ) from None
        if len(self._opened) >= _OPENED_KEPT:
            self._opened.clear()
        self._opened[sealed] = opened
        return opened


_OPENED_KEPT = 10_000


def _derive(secret_key: bytes) -> bytes:
    digest = hashlib.sha256(b"walletsvc-secret-box:" + secret_key).digest()
    return base64.urlsafe_b64encode(digest)
