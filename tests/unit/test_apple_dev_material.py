"""Development signing material is made once, reused, and remade only when it no longer fits."""

from __future__ import annotations

import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from walletsvc.apple.credentials import load_signing_identity
from walletsvc.apple.dev_material import DevAppleMaterial, ensure_dev_apple_material, main

PASS_TYPE_ID = "pass.com.example.walletsvc.test"
TEAM_ID = "TESTTEAM42"


def _snapshot(material: DevAppleMaterial) -> dict[str, bytes]:
    return {
        "ca": material.ca_certificate.read_bytes(),
        "cert": material.certificate.read_bytes(),
        "key": material.private_key.read_bytes(),
    }


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def material(tmp_path: Path) -> DevAppleMaterial:
    return ensure_dev_apple_material(
        tmp_path / "data" / "apple", pass_type_identifier=PASS_TYPE_ID, team_identifier=TEAM_ID
    )


def test_second_call_reuses_the_same_files(material: DevAppleMaterial) -> None:
    before = _snapshot(material)
    again = ensure_dev_apple_material(
        material.certificate.parent, pass_type_identifier=PASS_TYPE_ID, team_identifier=TEAM_ID
    )
    assert again == material
    assert _snapshot(again) == before


def test_material_loads_as_a_signing_identity_and_chains_to_the_ca(
    material: DevAppleMaterial,
) -> None:
    identity = load_signing_identity(
        wwdr=material.ca_certificate,
        certificate=material.certificate,
        private_key=material.private_key,
    )
    assert identity.pass_type_identifier == PASS_TYPE_ID
    assert identity.team_identifier == TEAM_ID
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(material.ca_certificate), str(material.certificate)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_certificates_look_like_apple_ones_and_say_they_are_not(
    material: DevAppleMaterial,
) -> None:
    ca = _cert(material.ca_certificate)
    leaf = _cert(material.certificate)

    assert "not Apple" in ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign

    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"Pass Type ID: {PASS_TYPE_ID}"
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    lifetime = leaf.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=700) < lifetime <= timedelta(days=731)


def test_keys_are_private_and_the_new_directory_is_closed(material: DevAppleMaterial) -> None:
    directory = material.private_key.parent
    assert stat.S_IMODE(material.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "wwdr-dev-ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []
    key = serialization.load_pem_private_key(material.private_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def test_new_pass_type_reissues_the_certificate_under_the_same_ca(
    material: DevAppleMaterial,
) -> None:
    before = _snapshot(material)
    other = ensure_dev_apple_material(
        material.certificate.parent,
        pass_type_identifier="pass.com.example.other",
        team_identifier=TEAM_ID,
    )
    after = _snapshot(other)
    assert after["ca"] == before["ca"]
    assert after["cert"] != before["cert"]
    uid = _cert(other.certificate).subject.get_attributes_for_oid(NameOID.USER_ID)[0].value
    assert uid == "pass.com.example.other"


def test_new_team_reissues_the_certificate(material: DevAppleMaterial) -> None:
    ensure_dev_apple_material(
        material.certificate.parent, pass_type_identifier=PASS_TYPE_ID, team_identifier="TEAM2"
    )
    leaf = _cert(material.certificate)
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "TEAM2"
    )


def test_certificate_close_to_expiry_is_reissued(material: DevAppleMaterial) -> None:
    directory = material.certificate.parent
    ca_cert = _cert(material.ca_certificate)
    ca_key = serialization.load_pem_private_key(
        (directory / "wwdr-dev-ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = serialization.load_pem_private_key(material.private_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    leaf = _cert(material.certificate)
    now = datetime.now(UTC)
    dying = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=700))
        .not_valid_after(now + timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    material.certificate.write_bytes(dying.public_bytes(serialization.Encoding.PEM))

    ensure_dev_apple_material(directory, pass_type_identifier=PASS_TYPE_ID, team_identifier=TEAM_ID)
    assert _cert(material.certificate).not_valid_after_utc > now + timedelta(days=700)


def test_lost_key_makes_a_new_matching_pair(material: DevAppleMaterial) -> None:
    material.private_key.unlink()
    ensure_dev_apple_material(
        material.certificate.parent, pass_type_identifier=PASS_TYPE_ID, team_identifier=TEAM_ID
    )
    identity = load_signing_identity(
        wwdr=material.ca_certificate,
        certificate=material.certificate,
        private_key=material.private_key,
    )
    assert identity.pass_type_identifier == PASS_TYPE_ID


def test_valid_days_sets_the_certificate_lifetime(tmp_path: Path) -> None:
    material = ensure_dev_apple_material(
        tmp_path, pass_type_identifier=PASS_TYPE_ID, team_identifier=TEAM_ID, valid_days=3650
    )
    lifetime = _cert(material.certificate).not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=3640) < lifetime <= timedelta(days=3651)
    assert (
        _cert(material.ca_certificate).not_valid_after_utc
        >= _cert(material.certificate).not_valid_after_utc
    )


def test_command_line_prints_the_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "cli"
    assert main([str(directory), "--pass-type-id", PASS_TYPE_ID, "--team-id", TEAM_ID]) == 0
    out = capsys.readouterr().out
    for name in ("wwdr-dev-ca.pem", "pass-certificate.pem", "pass-key.pem"):
        assert str(directory / name) in out
        assert (directory / name).is_file()
