"""Build signed `.pkpass` bundles: pass.json, assets, manifest.json and a detached CMS signature.

Bundle layout and signing rules:
https://developer.apple.com/documentation/walletpasses/building-a-pass
The zip is written by hand following PKWARE's APPNOTE (sections 4.3.7, 4.3.12 and 4.3.16):
https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from prometheus_client import Counter

from walletsvc.apple.credentials import SigningIdentity

__all__ = ["PKPASS_MEDIA_TYPE", "PkpassBuilder", "PreparedAssets", "sign_manifest"]

PKPASS_MEDIA_TYPE = "application/vnd.apple.pkpass"

# Names the bundle itself uses; an asset must not take them.
_RESERVED = frozenset({"pass.json", "manifest.json", "signature"})

# Binary is essential: without it the manifest is CRLF-canonicalised before hashing and the
# signature no longer matches the bytes in the bundle. signingTime is added by cryptography
# (iOS rejects a pass signature without it).
_SIGN_OPTIONS = (pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary)

# Every entry is stored, not deflated: the images are PNGs (already deflated inside), and the
# per-pass entries are a few KB that would cost more CPU to compress than they save. The field
# values are the ones Python's zipfile writes for a stored entry, so readers see nothing unusual.
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # APPNOTE 4.3.7, the name follows
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHI")  # APPNOTE 4.3.12 up to the offset
_OFFSET = struct.Struct("<I")  # the central header's last field: where the local header is
_END_RECORD = struct.Struct("<IHHHHIIH")  # APPNOTE 4.3.16
_LOCAL_SIGNATURE, _CENTRAL_SIGNATURE, _END_SIGNATURE = 0x04034B50, 0x02014B50, 0x06054B50
_VERSION_NEEDED = 20  # 2.0: plain stored entries, no zip64
_VERSION_MADE_BY = (3 << 8) | 20  # Unix, so readers apply the file mode in external attributes
_UTF8_NAME = 0x0800  # general purpose flag bit 11: the name is UTF-8
_STORED = 0
# A fixed timestamp (1980-01-01 00:00:00, as MS-DOS time and date) keeps the zip bytes a
# function of the content alone.
_DOS_TIME, _DOS_DATE = 0, (1 << 5) | 1
_FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--
# Sizes, offsets and entry counts beyond these need zip64, which passes never need.
_ZIP32_LIMIT, _ZIP32_ENTRIES = 0xFFFFFFFF, 0xFFFF


class _Entry(NamedTuple):
    """One zip entry's headers, with the local header's offset left to fill in."""

    local_header: bytes  # fixed fields and the name
    central_head: bytes  # fixed fields up to the offset
    encoded_name: bytes

    def central_header(self, offset: int) -> bytes:
        """Return the central directory header for a local header at `offset`."""
        return self.central_head + _OFFSET.pack(offset) + self.encoded_name


def _entry(name: str, data: bytes) -> _Entry:
    try:
        encoded, flags = name.encode("ascii"), 0
    except UnicodeEncodeError:
        encoded, flags = name.encode("utf-8"), _UTF8_NAME
    crc, size = zlib.crc32(data), len(data)
    if size > _ZIP32_LIMIT:
        raise ValueError(f"{name!r} is too large for a pass bundle")
    local = _LOCAL_HEADER.pack(
        _LOCAL_SIGNATURE, _VERSION_NEEDED, flags, _STORED, _DOS_TIME, _DOS_DATE,
        crc, size, size, len(encoded), 0,
    )  # fmt: skip
    central = _CENTRAL_HEADER.pack(
        _CENTRAL_SIGNATURE, _VERSION_MADE_BY, _VERSION_NEEDED, flags, _STORED, _DOS_TIME,
        _DOS_DATE, crc, size, size, len(encoded), 0, 0, 0, 0, _FILE_MODE,
    )  # fmt: skip
    return _Entry(local + encoded, central, encoded)


@dataclass(frozen=True)
class _StaticRecords:
    """The assets' local headers and bytes, which are the same in every bundle of one design."""

    records: bytes
    # Each asset's entry with its local header's offset counted from the first asset.
    entries: tuple[tuple[_Entry, int], ...]

    @classmethod
    def of(cls, files: Mapping[str, bytes]) -> _StaticRecords:
        if len(files) + len(_RESERVED) > _ZIP32_ENTRIES:
            raise ValueError("too many assets for a pass bundle")
        parts: list[bytes] = []
        entries: list[tuple[_Entry, int]] = []
        offset = 0
        for name, data in files.items():
            entry = _entry(name, data)
            entries.append((entry, offset))
            parts += (entry.local_header, data)
            offset += len(entry.local_header) + len(data)
        if offset > _ZIP32_LIMIT:
            raise ValueError("the assets are too large for a pass bundle")
        return cls(b"".join(parts), tuple(entries))


@dataclass(frozen=True)
class PreparedAssets:
    """Validated pass images and strings with their SHA-1 digests, computed once per design."""

    files: Mapping[str, bytes]
    digests: Mapping[str, str]
    # The manifest entries of every asset, serialised once, without the opening brace.
    manifest_tail: bytes = field(repr=False)
    # The assets' part of the zip, laid out once from `files` so that a build only adds the
    # three per-pass entries around it.
    _static: _StaticRecords = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_static", _StaticRecords.of(self.files))


# Every CMS signature made: the cost the pass cache exists to avoid.
PASSES_SIGNED = Counter("walletsvc_passes_signed", "Signed .pkpass bundles built")


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
        """Validate asset names, require icon.png, hash every file and lay out its zip once."""
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
        PASSES_SIGNED.inc()
        return _bundle(pass_json, assets._static, manifest, signature)


def _manifest(pass_json: bytes, assets: PreparedAssets) -> bytes:
    digest = _sha1_hex(pass_json).encode()
    return b'{"pass.json":"' + digest + b'",' + assets.manifest_tail


def _sha1_hex(data: bytes) -> str:
    # Apple's manifest format fixes SHA-1; the signature over the manifest is what protects it.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _bundle(pass_json: bytes, static: _StaticRecords, manifest: bytes, signature: bytes) -> bytes:
    """Return the zip: pass.json, the assets in order, manifest.json, signature."""
    first = _entry("pass.json", pass_json)
    shift = len(first.local_header) + len(pass_json)
    parts = [first.local_header, pass_json, static.records]
    central = [first.central_header(0)]
    central += [entry.central_header(shift + offset) for entry, offset in static.entries]
    offset = shift + len(static.records)
    for name, data in (("manifest.json", manifest), ("signature", signature)):
        entry = _entry(name, data)
        parts += (entry.local_header, data)
        central.append(entry.central_header(offset))
        offset += len(entry.local_header) + len(data)
    directory = b"".join(central)
    if offset + len(directory) > _ZIP32_LIMIT:
        raise ValueError("the pass bundle is too large for a zip without zip64")
    count = len(central)
    end = _END_RECORD.pack(_END_SIGNATURE, 0, 0, count, count, len(directory), offset, 0)
    return b"".join((*parts, directory, end))


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
