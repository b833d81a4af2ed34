"""Check the zip, its required files, pass.json and the manifest of a .pkpass.

Bundle layout and pass.json keys:
https://developer.apple.com/documentation/walletpasses/building-a-pass
https://developer.apple.com/documentation/walletpasses/pass
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from walletsvc.apple.verify.report import Outcome, Problem, Status, names, ok, quote

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_MEMBERS",
    "check_manifest",
    "check_pass_json",
    "check_required_files",
    "open_zip",
]

# Real passes are far smaller; the caps keep a zip bomb or a huge file from exhausting memory.
MAX_BUNDLE_BYTES = 10 * 1024 * 1024
MAX_MEMBERS = 500

_REQUIRED_FILES = ("pass.json", "manifest.json", "signature", "icon.png")
_STYLE_KEYS = ("boardingPass", "coupon", "eventTicket", "generic", "storeCard")
_TEXT_KEYS = (
    "passTypeIdentifier",
    "serialNumber",
    "teamIdentifier",
    "organizationName",
    "description",
)
_MIN_TOKEN_LENGTH = 16
# What zipfile and its decompressors raise on damaged input. RuntimeError covers encrypted
# entries and NotImplementedError (unknown zip versions and compression methods).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_LIMIT = f"{MAX_BUNDLE_BYTES // (1024 * 1024)} MB"


def open_zip(bundle: bytes) -> Outcome[dict[str, bytes]]:
    """Unpack the bundle within the size and entry caps; return its files by name."""
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise Problem(f"the file is larger than {_LIMIT}; a pass is far smaller: shrink the images")
    try:
        archive = zipfile.ZipFile(io.BytesIO(bundle))
    except _ZIP_ERRORS as exc:
        raise Problem(
            f"not a readable zip ({exc or type(exc).__name__}); the download was truncated or "
            "the file is not a .pkpass: fetch it again"
        ) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise Problem(
                f"the zip holds {len(infos)} entries, more than the {MAX_MEMBERS} this checker "
                "accepts; a pass needs a few dozen files at most"
            )
        members = _file_entries(infos)
        declared = sum(info.file_size for info in members)
        if declared > MAX_BUNDLE_BYTES:
            raise Problem(
                f"the zip would unpack to {declared} bytes, more than {_LIMIT} (a zip bomb, "
                "or far too large images)"
            )
        files: dict[str, bytes] = {}
        total = 0
        for info in members:
            try:
                with archive.open(info) as member:
                    # Declared sizes can lie: read no more than what is left of the cap.
                    data = member.read(MAX_BUNDLE_BYTES - total + 1)
            except _ZIP_ERRORS as exc:
                raise Problem(
                    f"cannot unpack {quote(info.filename)} ({exc or type(exc).__name__}); "
                    "zip the pass again, unencrypted, with stored or deflated entries"
                ) from None
            total += len(data)
            if total > MAX_BUNDLE_BYTES:
                raise Problem(f"the zip unpacks to more than {_LIMIT} (a zip bomb?)")
            files[info.filename] = data
    return ok(f"a readable zip of {len(files)} files ({total} bytes unpacked)", files)


def check_required_files(files: Mapping[str, bytes]) -> Outcome[bool]:
    """Require pass.json, manifest.json, signature and icon.png at the top of the bundle."""
    missing = [name for name in _REQUIRED_FILES if name not in files]
    if missing:
        raise Problem(
            f"missing {names(missing)}; every pass needs pass.json, manifest.json, signature "
            "and icon.png at the top of the zip"
        )
    return ok("pass.json, manifest.json, signature and icon.png are present", True)


def check_pass_json(raw: bytes) -> Outcome[dict[str, Any]]:
    """Check the keys every pass.json needs; return the document even when some are wrong."""
    document = _load_json(raw, "pass.json")
    if not isinstance(document, dict):
        raise Problem("pass.json must be a JSON object")
    problems = []
    version = document.get("formatVersion")
    if type(version) is not int or version != 1:
        problems.append("formatVersion must be the number 1")
    problems += [
        f"{key} must be a non-empty string"
        for key in _TEXT_KEYS
        if not isinstance(document.get(key), str) or not document[key].strip()
    ]
    styles = [key for key in _STYLE_KEYS if key in document]
    if len(styles) != 1:
        found = ", ".join(styles) or "none"
        problems.append(f"exactly one style key ({', '.join(_STYLE_KEYS)}) is needed: {found}")
    service = document.get("webServiceURL")
    if service is not None:
        token = document.get("authenticationToken")
        if not isinstance(token, str) or len(token) < _MIN_TOKEN_LENGTH:
            problems.append(
                "with webServiceURL, authenticationToken must be a string of at least "
                f"{_MIN_TOKEN_LENGTH} characters"
            )
    if problems:
        return Outcome(Status.FAIL, "; ".join(problems) + "; fix pass.json", document)
    detail = (
        f"formatVersion 1, style {styles[0]}, passTypeIdentifier "
        f"{quote(document['passTypeIdentifier'])}, serialNumber {quote(document['serialNumber'])}"
    )
    if isinstance(service, str) and not service.startswith("https://"):
        return Outcome(
            Status.WARN,
            f"{detail}; but webServiceURL is not https: devices ignore it (no updates) unless "
            "'Allow HTTP Services' is on in their developer settings",
            document,
        )
    return ok(detail, document)


def check_manifest(files: Mapping[str, bytes], raw: bytes) -> Outcome[bool]:
    """Require the manifest to list every other file exactly once with its right SHA-1."""
    manifest = _load_json(raw, "manifest.json")
    if not isinstance(manifest, dict) or not all(
        isinstance(name, str) and isinstance(digest, str) for name, digest in manifest.items()
    ):
        raise Problem("manifest.json must be a JSON object mapping each file to its SHA-1 hex")
    present = set(files) - {"manifest.json", "signature"}
    unlisted = sorted(present - set(manifest))
    missing = sorted(set(manifest) - present)
    changed = sorted(
        name
        for name in present & set(manifest)
        # SHA-1 is fixed by Apple's manifest format; the signature is what protects it.
        if hashlib.sha1(files[name], usedforsecurity=False).hexdigest() != manifest[name].lower()
    )
    problems = []
    if unlisted:
        problems.append(f"{names(unlisted)} in the bundle but not listed")
    if missing:
        problems.append(f"{names(missing)} listed but not in the bundle")
    if changed:
        problems.append(f"{names(changed)} changed since the manifest was made (SHA-1 differs)")
    if problems:
        raise Problem(
            "; ".join(problems) + "; Wallet refuses such a pass: rebuild manifest.json from the "
            "files in the bundle and sign it again"
        )
    return ok(f"lists exactly the {len(present)} files of the bundle, every SHA-1 matches", True)


def _file_entries(infos: Iterable[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """Return the entries that are files; fail on unsafe or duplicate names."""
    seen: set[str] = set()
    entries = []
    for info in infos:
        name = info.filename
        reason = _unsafe_name(name)
        if reason:
            raise Problem(
                f"entry {quote(name)} {reason}; a bundle holds only relative paths like "
                "'en.lproj/pass.strings': zip the pass folder again"
            )
        if name in seen:
            raise Problem(f"entry {quote(name)} appears twice; keep one copy of each file")
        seen.add(name)
        if not info.is_dir():
            entries.append(info)
    return entries


def _unsafe_name(name: str) -> str | None:
    if not name:
        return "has an empty name"
    if name.startswith("/") or "\\" in name or _DRIVE.match(name):
        return "is an absolute or non-POSIX path"
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        return "contains control characters"
    # Directory entries end in one slash; every other segment must be a real name.
    if any(part in ("", ".", "..") for part in name.removesuffix("/").split("/")):
        return "has an empty, '.' or '..' path segment (path traversal)"
    return None


def _load_json(raw: bytes, name: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Problem(f"{name} is not valid UTF-8 JSON ({str(exc)[:120]})") from None
