"""Make throwaway Apple signing material for development: NOT valid on any real device.

A self-made CA stands in for Apple's WWDR intermediate and issues a Pass Type ID
certificate shaped like Apple's, so the whole signing path runs without an Apple
developer account. Wallet on an iPhone rejects every pass signed with it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DevAppleMaterial", "ensure_dev_apple_material", "main"]

CA_FILE = "wwdr-dev-ca.pem"
CA_KEY_FILE = "wwdr-dev-ca-key.pem"
CERTIFICATE_FILE = "pass-certificate.pem"
PRIVATE_KEY_FILE = "pass-key.pem"

DEFAULT_VALID_DAYS = 730
_CA_VALID_DAYS = 3653
# Reissue well before expiry so a long-running dev server never signs with a dying cert.
_MIN_REMAINING = timedelta(days=30)
# Tolerate small clock differences between this machine and whoever checks the cert.
_BACKDATE = timedelta(hours=1)
_ORGANIZATION = "walletsvc development"
_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COMMON_NAME, "walletsvc DEVELOPMENT WWDR stand-in (not Apple)"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
    ]
)


@dataclass(frozen=True)
class DevAppleMaterial:
    """Paths of the development CA, pass certificate and its private key."""

    ca_certificate: Path
    certificate: Path
    private_key: Path


def ensure_dev_apple_material(
    directory: Path,
    *,
    pass_type_identifier: str,
    team_identifier: str,
    valid_days: int = DEFAULT_VALID_DAYS,
) -> DevAppleMaterial:
    """Reuse or create a development CA and pass certificate in `directory`."""
    if valid_days <= _MIN_REMAINING.days:
        raise ValueError(f"valid_days must be more than {_MIN_REMAINING.days}")
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
    now = datetime.now(UTC)
    material = DevAppleMaterial(
        ca_certificate=directory / CA_FILE,
        certificate=directory / CERTIFICATE_FILE,
        private_key=directory / PRIVATE_KEY_FILE,
    )

    ca = _load_pair(material.ca_certificate, directory / CA_KEY_FILE)
    if ca is None or not _is_usable_ca(ca[0], now):
        ca = _make_ca(now, valid_days)
        # Key first: a crash between the two writes leaves a mismatch that forces regeneration.
        _write_atomically(directory / CA_KEY_FILE, _key_pem(ca[1]), mode=0o600)
        _write_atomically(material.ca_certificate, _cert_pem(ca[0]), mode=0o644)
    ca_cert, ca_key = ca

    leaf = _load_pair(material.certificate, material.private_key)
    if leaf is None or not _is_current_leaf(
        leaf[0], ca_cert, now, pass_type_identifier, team_identifier
    ):
        leaf = _make_leaf(ca_cert, ca_key, now, pass_type_identifier, team_identifier, valid_days)
        _write_atomically(material.private_key, _key_pem(leaf[1]), mode=0o600)
        _write_atomically(material.certificate, _cert_pem(leaf[0]), mode=0o644)
    return material


def _is_usable_ca(cert: x509.Certificate, now: datetime) -> bool:
    return cert.subject == _CA_NAME and cert.not_valid_after_utc - now >= _MIN_REMAINING


def _is_current_leaf(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    now: datetime,
    pass_type_identifier: str,
    team_identifier: str,
) -> bool:
    subject = cert.subject
    if [a.value for a in subject.get_attributes_for_oid(NameOID.USER_ID)] != [
        pass_type_identifier
    ] or [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] != [
        team_identifier
    ]:
        return False
    if cert.not_valid_after_utc - now < _MIN_REMAINING:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, rsa.RSAPrivateKey] | None:
    """Return the certificate and its RSA key, or None when missing, unreadable or mismatched."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    public = cert.public_key()
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
        return None
    if key.public_key().public_numbers() != public.public_numbers():
        return None
    return cert, key


def _make_ca(now: datetime, valid_days: int) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The CA must outlive any pass certificate it issues.
    lifetime = timedelta(days=max(_CA_VALID_DAYS, valid_days + 1))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_CA_NAME)
        .issuer_name(_CA_NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    now: datetime,
    pass_type_identifier: str,
    team_identifier: str,
    valid_days: int,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Same subject layout as Apple's Pass Type ID certificates, which the loader relies on.
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, pass_type_identifier),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_identifier}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_identifier),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )
    not_after = min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    # mkstemp creates the file 0600, so a key is never readable by others, even briefly.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Create or reuse development Apple signing material and print the file paths."""
    parser = argparse.ArgumentParser(
        prog="python -m walletsvc.apple.dev_material",
        description="Make throwaway pass signing material (NOT valid on real devices).",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--pass-type-id", required=True, help="e.g. pass.com.example.demo")
    parser.add_argument("--team-id", required=True, help="e.g. DEVTEAM123")
    parser.add_argument("--valid-days", type=int, default=DEFAULT_VALID_DAYS)
    args = parser.parse_args(argv)
    material = ensure_dev_apple_material(
        args.directory,
        pass_type_identifier=args.pass_type_id,
        team_identifier=args.team_id,
        valid_days=args.valid_days,
    )
    print(f"ca_certificate: {material.ca_certificate}")
    print(f"certificate:    {material.certificate}")
    print(f"private_key:    {material.private_key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
