"""The development service-account key file behaves like a real one for google-auth."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions, jwt
from google.oauth2 import service_account

from walletsvc.google.dev_material import ensure_dev_service_account, main

REAL_KEY_FILE_FIELDS = {
    "type",
    "project_id",
    "private_key_id",
    "private_key",
    "client_email",
    "client_id",
    "auth_uri",
    "token_uri",
    "auth_provider_x509_cert_url",
    "client_x509_cert_url",
    "universe_domain",
}
CERTS = Path(__file__).resolve().parents[2] / "certs_example"


def _public_pem(info: dict[str, str]) -> bytes:
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_file_has_the_fields_of_a_real_one_and_is_private(tmp_path: Path) -> None:
    path = ensure_dev_service_account(tmp_path / "sa.json")
    info = json.loads(path.read_text())
    assert set(info) == REAL_KEY_FILE_FIELDS
    assert info["type"] == "service_account"
    assert info["universe_domain"] == "googleapis.com"
    assert len(info["private_key_id"]) == 40
    int(info["private_key_id"], 16)
    assert info["client_id"].isdigit()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_google_auth_loads_it_and_its_signatures_verify(tmp_path: Path) -> None:
    path = ensure_dev_service_account(
        tmp_path / "sa.json", token_uri="http://127.0.0.1:8765/token", client_email="a@b.iam.x"
    )
    info = json.loads(path.read_text())
    assert info["token_uri"] == "http://127.0.0.1:8765/token"
    credentials = service_account.Credentials.from_service_account_file(str(path))
    assert credentials.service_account_email == "a@b.iam.x"

    now = int(time.time())
    claims = {"iss": "a@b.iam.x", "aud": "google", "typ": "savetowallet", "iat": now}
    token = jwt.encode(credentials.signer, {**claims, "exp": now + 60})
    decoded = jwt.decode(token, certs=_public_pem(info), audience="google")
    assert decoded["typ"] == "savetowallet"

    other = json.loads(ensure_dev_service_account(tmp_path / "other.json").read_text())
    with pytest.raises(exceptions.GoogleAuthError):
        jwt.decode(token, certs=_public_pem(other), audience="google")


def test_existing_key_file_is_left_alone(tmp_path: Path) -> None:
    path = ensure_dev_service_account(tmp_path / "sa.json")
    before = path.read_bytes()
    assert ensure_dev_service_account(path) == path
    assert path.read_bytes() == before


def test_committed_example_key_file_loads() -> None:
    path = CERTS / "google-service-account.json"
    credentials = service_account.Credentials.from_service_account_file(str(path))
    assert credentials.service_account_email.endswith(".iam.gserviceaccount.com")


def test_command_line_writes_and_prints_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nested" / "sa.json"
    assert main([str(path), "--token-uri", "http://localhost:1/token"]) == 0
    assert str(path) in capsys.readouterr().out
    assert json.loads(path.read_text())["token_uri"] == "http://localhost:1/token"
