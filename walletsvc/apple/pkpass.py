"""Build signed `.pkpass` bundles: pass.json, assets, manifest.json and a detached CMS signature.

Bundle layout and signing rules:
https://developer.apple.com/documentation/walletpasses/building-a-pass
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from walletsvc.apple.credentials import SigningIdentity

__all__ = ["PKPASS_MEDIA_TYPE", "PkpassBuilder", "PreparedAssets", "sign_manifest"]

PKPASS_MEDIA_TYPE = "application/vnd.apple.pkpass"

# Names the bundle itself uses; an asset must not take them.
_RESERVED = frozenset({"pass.json", "manifest.json", "signature"})

# Binary is essential: without it the manifest is CRLF-canonicalised before hashing and the
# signature no longer matches the bytes in the bundle. signingTime is added by cryptography
# (iOS rejects a pass signature without it).
_SIGN_OPTIONS = (pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary)
# A fixed timestamp keeps the zip bytes a function of the content alone.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--


@dataclass(frozen=True)
class PreparedAssets:
    """Validated pass images and strings with their SHA-1 digests, computed once per design."""

    files: Mapping[str, bytes]
    digests: Mapping[str, str]
    # The manifest entries of every asset, serialised once, without the opening brace.
    manifest_tail: bytes = field(repr=False)


def sign_manifest(manifest: bytes, identity: SigningIdentity) -> bytes:
    """Return a detached DER CMS signature over the exact manifest bytes."""
    # Keep this call order: cryptography's set_data() and add_signer() return builders that
    # drop certificates added before them (seen in 50.0.2), which would leave out the WWDR.
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(identity.certificate, identity.private_key, hashes.SHA256())
        .add_certificate(identity.wwdr)
        .sign(Encoding.DER, _SIGN_OPTIONS)
    )


class PkpassBuilder:
    """Turn pass.json bytes plus prepared assets into signed .pkpass bytes; thread-safe."""

    def __init__(self, identity: SigningIdentity) -> None:
        # Only immutable state lives here, so concurrent build() calls share nothing mutable.
        self._identity = identity

    @property
    def identity(self) -> SigningIdentity:
        """Return the signing identity this builder signs with."""
        return self._identity

    def prepare_assets(self, assets: Mapping[str, bytes]) -> PreparedAssets:
        """Validate asset names, require icon.png and hash every file once."""
        for name, data in assets.items():
            _check_asset_name(name)
            if not isinstance(data, bytes):
                raise ValueError(f"asset {name!r} must be bytes, not {type(data).__name__}")
        if "icon.png" not in assets:
            raise ValueError("assets must include icon.png: Wallet refuses a pass without it")
        files = {name: assets[name] for name in sorted(assets)}
        digests = {name: _sha1_hex(data) for name, data in files.items()}
        tail = json.dumps(digests, separators=(",", ":")).encode()[1:]
        return PreparedAssets(
            files=MappingProxyType(files),
            digests=MappingProxyType(digests),
            manifest_tail=tail,
        )

    def build(self, pass_json: bytes, assets: PreparedAssets) -> bytes:
        """Return the signed .pkpass zip for one pass."""
        if not isinstance(pass_json, bytes) or not pass_json:
            raise ValueError("pass_json must be non-empty bytes")
        manifest = _manifest(pass_json, assets)
        signature = sign_manifest(manifest, self._identity)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as bundle:
            _add(bundle, "pass.json", pass_json)
            for name, data in assets.files.items():
                _add(bundle, name, data)
            _add(bundle, "manifest.json", manifest)
            _add(bundle, "signature", signature)
        return out.getvalue()


def _manifest(pass_json: bytes, assets: PreparedAssets) -> bytes:
    digest = _sha1_hex(pass_json).encode()
    return b'{"pass.json":"' + digest + b'",' + assets.manifest_tail


def _sha1_hex(data: bytes) -> str:
    # Apple's manifest format fixes SHA-1; the signature over the manifest is what protects it.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _add(bundle: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.external_attr = _ZIP_FILE_MODE
    bundle.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def _check_asset_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"asset name must be a non-empty string, not {name!r}")
    if name in _RESERVED:
        raise ValueError(f"asset name {name!r} is reserved for the bundle itself")
    if name.startswith("/") or "\\" in name:
        raise ValueError(f"asset name {name!r} must be a relative POSIX path")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        raise ValueError(f"asset name {name!r} contains control characters")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"asset name {name!r} has an empty, '.' or '..' path segment")
