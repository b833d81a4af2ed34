"""Start-up refuses settings and certificates that cannot work, saying what to fix."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from tests.conftest import CERTS
from walletsvc.apple.credentials import CredentialError
from walletsvc.apple.dev_material import ensure_dev_apple_material
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.cli import main
from walletsvc.config import load_settings
from walletsvc.domain.errors import ConfigurationError
from walletsvc.services.api_keys import bootstrap_principal
from walletsvc.services.programs import create_program


def expired_pass_certificate(tmp_path):
    """A pass certificate from the example CA whose validity ended yesterday."""
    ca_cert = x509.load_pem_x509_certificate((CERTS / "wwdr-dev-ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((CERTS / "wwdr-dev-ca-key.pem").read_bytes(), None)
    key = serialization.load_pem_private_key((CERTS / "pass-key.pem").read_bytes(), None)
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, "pass.com.example.walletsvc.demo"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, "Pass Type ID: pass.com.example.walletsvc.demo"
            ),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "DEVTEAM123"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now - timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    path = tmp_path / "expired.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_an_expired_pass_certificate_stops_the_start(make_settings, tmp_path):
    settings = make_settings(
        apple={
            "pass_certificate": expired_pass_certificate(tmp_path),
            "pass_key": CERTS / "pass-key.pem",
            "wwdr_certificate": CERTS / "wwdr-dev-ca.pem",
        }
    )
    with pytest.raises(ConfigurationError, match="expired"):
        build_container(settings)


def test_production_refuses_to_start_without_real_material(monkeypatch):
    monkeypatch.setenv("WALLETSVC_MODE", "production")
    with pytest.raises(ValidationError) as refused:
        load_settings()
    message = str(refused.value)
    assert "WALLETSVC_SECRET_KEY" in message
    assert "WALLETSVC_APPLE__WWDR_CERTIFICATE" in message


def test_cli_reports_bad_settings_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("WALLETSVC_PORT", "not-a-port")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "port" in err and "Traceback" not in err


def test_a_certificate_from_another_ca_is_refused_with_a_hint(make_settings, tmp_path):
    other = ensure_dev_apple_material(
        tmp_path / "other", pass_type_identifier="pass.com.example.other", team_identifier="T"
    )
    settings = make_settings(
        apple={
            "pass_certificate": other.certificate,
            "pass_key": other.private_key,
            "wwdr_certificate": CERTS / "wwdr-dev-ca.pem",
        }
    )
    with pytest.raises(CredentialError, match="WWDR"):
        build_container(settings)


def test_production_needs_an_admin_key(monkeypatch):
    monkeypatch.setenv("WALLETSVC_MODE", "production")
    monkeypatch.setenv("WALLETSVC_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("WALLETSVC_PUBLIC_URL", "https://wallet.example.de")
    monkeypatch.setenv("WALLETSVC_APPLE__PASS_P12", str(CERTS / "pass.p12"))
    monkeypatch.setenv("WALLETSVC_APPLE__WWDR_CERTIFICATE", str(CERTS / "wwdr-dev-ca.pem"))
    with pytest.raises(ValidationError, match="WALLETSVC_ADMIN_API_KEY"):
        load_settings()


def test_a_malformed_key_list_is_a_settings_error_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("WALLETSVC_PREVIOUS_SECRET_KEYS", "not-json")
    assert main(["migrate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_production_refuses_a_wwdr_that_is_not_g4(make_settings):
    settings = make_settings(
        mode="production",
        public_url="https://wallet.example.de",
        apple={
            "pass_p12": CERTS / "pass.p12",
            "pass_key_passphrase": "walletsvc-example",
            "wwdr_certificate": CERTS / "wwdr-dev-ca.pem",
        },
    )
    with pytest.raises(ConfigurationError, match="not Apple WWDR G4"):
        build_container(settings)


async def test_a_program_of_another_pass_type_stops_the_start(container, make_settings):
    async with container.ctx.uow() as uow:
        demo = await uow.programs.get("demo")
    assert demo is not None
    foreign = replace(
        demo,
        id="foreign",
        apple=replace(demo.apple, pass_type_identifier="pass.com.example.foreign"),
    )
    dev_ctx = replace(container.ctx, development=True)
    await create_program(dev_ctx, bootstrap_principal(), foreign)
    restarted = build_container(make_settings())
    try:
        with pytest.raises(ConfigurationError, match=r"foreign \(pass\.com\.example\.foreign"):
            await prepare_database(restarted)
    finally:
        await restarted.close()


@pytest.mark.postgres
async def test_processes_starting_together_on_an_empty_database_all_come_up(make_settings):
    """Several processes migrating and adding the demo program at once: none fails."""
    import asyncio
    import uuid

    import asyncpg
    from sqlalchemy.engine import make_url

    from tests.conftest import EXTERNAL_DATABASE

    assert EXTERNAL_DATABASE is not None
    url = make_url(EXTERNAL_DATABASE)
    name = f"walletsvc_start_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        fresh = url.set(database=name).render_as_string(hide_password=False)
        containers = [build_container(make_settings(database_url=fresh)) for _ in range(4)]
        try:
            await asyncio.gather(*(prepare_database(c) for c in containers))
            async with containers[0].ctx.uow() as uow:
                assert [p.id for p in await uow.programs.list()] == ["demo"]
        finally:
            for built in containers:
                await built.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
