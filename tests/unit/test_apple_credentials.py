"""Loading the pass signing identity accepts the usual exports and explains every mistake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from walletsvc.apple.credentials import (
    CredentialError,
    SigningIdentity,
    days_until_expiry,
    load_signing_identity,
)

CERTS = Path(__file__).resolve().parents[2] / "certs_example"
WWDR = CERTS / "wwdr-dev-ca.pem"
CERT = CERTS / "pass-certificate.pem"
KEY = CERTS / "pass-key.pem"
ENCRYPTED_KEY = CERTS / "pass-key-encrypted.pem"
P12 = CERTS / "pass.p12"
PASSPHRASE = "walletsvc-example"
WRONG_PASSPHRASE = "not-the-passphrase-42"


def _assert_identity(identity: SigningIdentity) -> None:
    assert identity.pass_type_identifier == "pass.com.example.walletsvc.demo"
    assert identity.team_identifier == "DEVTEAM123"
    assert identity.not_valid_after.tzinfo is not None
    assert identity.not_valid_after == identity.certificate.not_valid_after_utc
    assert identity.wwdr.subject == identity.certificate.issuer


def _self_signed(tmp_path: Path, name: x509.Name, filename: str) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / filename
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_pem_certificate_with_plain_key_loads() -> None:
    _assert_identity(load_signing_identity(wwdr=WWDR, certificate=CERT, private_key=KEY))


def test_pem_certificate_with_encrypted_key_loads_with_the_right_passphrase() -> None:
    identity = load_signing_identity(
        wwdr=WWDR, certificate=CERT, private_key=ENCRYPTED_KEY, passphrase=PASSPHRASE
    )
    _assert_identity(identity)


def test_pkcs12_bundle_loads() -> None:
    _assert_identity(load_signing_identity(wwdr=WWDR, p12=P12, passphrase=PASSPHRASE))


def test_der_files_as_apple_hands_them_out_load(tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate(CERT.read_bytes())
    wwdr = x509.load_pem_x509_certificate(WWDR.read_bytes())
    key = serialization.load_pem_private_key(KEY.read_bytes(), password=None)
    (tmp_path / "pass.cer").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "AppleWWDRCAG4.cer").write_bytes(wwdr.public_bytes(serialization.Encoding.DER))
    (tmp_path / "key.der").write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    identity = load_signing_identity(
        wwdr=tmp_path / "AppleWWDRCAG4.cer",
        certificate=tmp_path / "pass.cer",
        private_key=tmp_path / "key.der",
    )
    _assert_identity(identity)


def test_wrong_passphrase_is_named_without_revealing_it() -> None:
    with pytest.raises(CredentialError) as caught:
        load_signing_identity(
            wwdr=WWDR, certificate=CERT, private_key=ENCRYPTED_KEY, passphrase=WRONG_PASSPHRASE
        )
    message = str(caught.value)
    assert str(ENCRYPTED_KEY) in message
    assert "passphrase" in message
    assert WRONG_PASSPHRASE not in message


def test_encrypted_key_without_passphrase_asks_for_one() -> None:
    with pytest.raises(CredentialError, match="encrypted; configure its passphrase"):
        load_signing_identity(wwdr=WWDR, certificate=CERT, private_key=ENCRYPTED_KEY)


def test_wrong_pkcs12_passphrase_is_named_without_revealing_it() -> None:
    with pytest.raises(CredentialError) as caught:
        load_signing_identity(wwdr=WWDR, p12=P12, passphrase=WRONG_PASSPHRASE)
    message = str(caught.value)
    assert str(P12) in message
    assert "passphrase" in message
    assert WRONG_PASSPHRASE not in message


def test_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = tmp_path / "other-key.pem"
    other_key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(CredentialError, match="does not match the certificate") as caught:
        load_signing_identity(wwdr=WWDR, certificate=CERT, private_key=other_key)
    assert str(other_key) in str(caught.value)


def test_certificate_from_another_wwdr_is_refused_with_a_hint(tmp_path: Path) -> None:
    old_wwdr = _self_signed(
        tmp_path,
        x509.Name(
            [
                x509.NameAttribute(
                    NameOID.COMMON_NAME,
                    "Apple Worldwide Developer Relations Certification Authority",
                ),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "G1"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Apple Inc."),
            ]
        ),
        "AppleWWDRCA.pem",
    )
    with pytest.raises(CredentialError, match="WWDR G4") as caught:
        load_signing_identity(wwdr=old_wwdr, certificate=CERT, private_key=KEY)
    assert str(old_wwdr) in str(caught.value)


def test_wwdr_with_the_right_name_but_another_key_is_refused(tmp_path: Path) -> None:
    wwdr = x509.load_pem_x509_certificate(WWDR.read_bytes())
    impostor = _self_signed(tmp_path, wwdr.subject, "impostor.pem")
    with pytest.raises(CredentialError, match="not issued by the WWDR"):
        load_signing_identity(wwdr=impostor, certificate=CERT, private_key=KEY)


def test_certificate_without_pass_type_uid_is_refused(tmp_path: Path) -> None:
    ca_cert = x509.load_pem_x509_certificate(WWDR.read_bytes())
    ca_key = serialization.load_pem_private_key(
        (CERTS / "wwdr-dev-ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = serialization.load_pem_private_key(KEY.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some TLS client")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    path = tmp_path / "client.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CredentialError, match="no UID"):
        load_signing_identity(wwdr=WWDR, certificate=path, private_key=KEY)


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "pass.pem"
    with pytest.raises(CredentialError, match="not found") as caught:
        load_signing_identity(wwdr=WWDR, certificate=missing, private_key=KEY)
    assert str(missing) in str(caught.value)


def test_missing_wwdr_is_named(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="WWDR certificate file not found"):
        load_signing_identity(wwdr=tmp_path / "wwdr.pem", certificate=CERT, private_key=KEY)


def test_certificate_without_key_or_p12_is_refused() -> None:
    with pytest.raises(CredentialError, match="private key"):
        load_signing_identity(wwdr=WWDR, certificate=CERT)


def test_days_until_expiry_counts_whole_days_left() -> None:
    identity = load_signing_identity(wwdr=WWDR, certificate=CERT, private_key=KEY)
    expiry = identity.not_valid_after
    assert days_until_expiry(identity, expiry - timedelta(days=10, hours=1)) == 10
    assert days_until_expiry(identity, expiry - timedelta(hours=1)) == 0
    assert days_until_expiry(identity, expiry + timedelta(days=3)) == -3
    with pytest.raises(ValueError):
        days_until_expiry(identity, expiry.replace(tzinfo=None))
