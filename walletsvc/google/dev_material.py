"""Make a throwaway Google service-account key file for development: Google rejects it.

The file has every field of a real key file (see
https://cloud.google.com/iam/docs/keys-create-delete), so google-auth loads it and
signs with it; pointing `token_uri` at a local fake token endpoint lets tests run the
whole OAuth2 flow offline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["DEFAULT_CLIENT_EMAIL", "DEFAULT_TOKEN_URI", "ensure_dev_service_account", "main"]

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_CLIENT_EMAIL = "walletsvc-dev@walletsvc-dev.iam.gserviceaccount.com"


def ensure_dev_service_account(
    path: Path,
    *,
    token_uri: str = DEFAULT_TOKEN_URI,
    client_email: str = DEFAULT_CLIENT_EMAIL,
) -> Path:
    """Write a development service-account key file at `path` unless one exists."""
    if path.exists():
        return path
    if "@" not in client_email:
        raise ValueError(f"client_email must be an e-mail address, not {client_email!r}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    # Real service-account addresses read <name>@<project>.iam.gserviceaccount.com.
    domain = client_email.split("@", 1)[1]
    project_id = domain.split(".", 1)[0]
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_key,
        "client_email": client_email,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email, safe="")
        ),
        "universe_domain": "googleapis.com",
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(path, (json.dumps(info, indent=2) + "\n").encode())
    return path


def _write_private(path: Path, data: bytes) -> None:
    # mkstemp makes the file 0600 from the start; os.replace publishes it whole or not at all.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Create a development service-account key file if missing and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m walletsvc.google.dev_material",
        description="Make a throwaway service-account key file (Google rejects it).",
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--token-uri", default=DEFAULT_TOKEN_URI)
    parser.add_argument("--client-email", default=DEFAULT_CLIENT_EMAIL)
    args = parser.parse_args(argv)
    print(
        ensure_dev_service_account(
            args.path, token_uri=args.token_uri, client_email=args.client_email
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
