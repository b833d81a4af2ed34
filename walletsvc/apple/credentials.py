"""Load and check the Pass Type ID signing identity: certificate, private key and WWDR.

Apple's pass certificate guide:
https://developer.apple.com/documentation/walletpasses/building-a-pass
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = [
    "CredentialError",
    "SigningIdentity",
    "SigningKey",
    "days_until_expiry",
    "load_signing_identity",
]

# The only key types PassKit (and CMS signing in cryptography) accept for a pass certificate.
SigningKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_PEM_MARKER = b"-----BEGIN"


class CredentialError(ValueError):
    """A pass certificate, key or WWDR that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class SigningIdentity:
    """A Pass Type ID certificate with its private key and the WWDR certificate that issued it."""

    certificate: x509.Certificate
    private_key: SigningKey
    wwdr: x509.Certificate
    pass_type_identifier: str
    team_identifier: str
    not_valid_after: datetime


def load_signing_identity(
    *,
    wwdr: Path,
    certificate: Path | None = None,
    private_key: Path | None = None,
    passphrase: str | None = None,
    p12: Path | None = None,
) -> SigningIdentity:
    """Load a certificate and key (PEM/DER pair or PKCS#12) and check them against the WWDR."""
    password = passphrase.encode() if passphrase is not None else None
    if p12 is not None:
        if certificate is not None or private_key is not None:
            raise CredentialError(
                "give either a PKCS#12 file or a certificate with its private key, not both"
            )
        cert, key, cert_source, key_source = _load_p12(p12, password)
    elif certificate is not None and private_key is not None:
        cert = _load_certificate(certificate, "pass certificate")
        key = _load_private_key(private_key, password)
        cert_source, key_source = certificate, private_key
    else:
        raise CredentialError(
            "give the pass certificate and its private key, or a PKCS#12 file holding both"
        )
    wwdr_cert = _load_certificate(wwdr, "WWDR certificate")

    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise CredentialError(
            f"{key_source}: the private key does not match the certificate in {cert_source}; "
            "use the key that was created with this certificate's signing request"
        )
    pass_type_identifier = _subject_attribute(cert, NameOID.USER_ID)
    team_identifier = _subject_attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not pass_type_identifier or not team_identifier:
        raise CredentialError(
            f"{cert_source}: the certificate subject has no UID (pass type identifier) or no "
            "OU (team identifier); use a Pass Type ID certificate from the Apple developer portal"
        )
    _check_issued_by(cert, cert_source, wwdr_cert, wwdr)
    return SigningIdentity(
        certificate=cert,
        private_key=key,
        wwdr=wwdr_cert,
        pass_type_identifier=pass_type_identifier,
        team_identifier=team_identifier,
        not_valid_after=cert.not_valid_after_utc,
    )


def days_until_expiry(identity: SigningIdentity, now: datetime) -> int:
    """Return the whole days left before the pass certificate expires (negative once expired)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return (identity.not_valid_after - now.astimezone(UTC)).days


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CredentialError(f"{path}: {what} file not found; check the configured path") from None
    except OSError as exc:
        raise CredentialError(
            f"{path}: cannot read the {what} file ({exc.strerror}); check its permissions"
        ) from None


def _load_certificate(path: Path, what: str) -> x509.Certificate:
    data = _read(path, what)
    try:
        if _PEM_MARKER in data:
            return x509.load_pem_x509_certificate(data)
        # Apple hands out the WWDR and pass certificates as DER (.cer).
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CredentialError(
            f"{path}: not a readable X.509 {what} (expected PEM or DER); "
            "export the certificate again"
        ) from None


def _load_private_key(path: Path, password: bytes | None) -> SigningKey:
    data = _read(path, "private key")
    pem = _PEM_MARKER in data
    try:
        if pem:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except TypeError:
        # cryptography raises TypeError when a passphrase is missing or superfluous.
        if password is None:
            raise CredentialError(
                f"{path}: the private key is encrypted; configure its passphrase"
            ) from None
        raise CredentialError(
            f"{path}: the private key is not encrypted; remove the configured passphrase"
        ) from None
    except ValueError:
        if password is not None and (not pem or b"ENCRYPTED" in data):
            raise CredentialError(
                f"{path}: cannot decrypt the private key; check the passphrase"
            ) from None
        raise CredentialError(
            f"{path}: not a readable private key (expected PEM or DER PKCS#8/PKCS#1/SEC1)"
        ) from None
    except UnsupportedAlgorithm:
        raise CredentialError(
            f"{path}: the private key uses an unsupported encryption; "
            "re-export it as PKCS#8 with AES-256"
        ) from None
    return _signing_key(key, path)


def _load_p12(
    path: Path, password: bytes | None
) -> tuple[x509.Certificate, SigningKey, Path, Path]:
    data = _read(path, "PKCS#12")
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        hint = "check the passphrase" if password is not None else "configure its passphrase"
        raise CredentialError(
            f"{path}: cannot open the PKCS#12 file; {hint} (or export it again)"
        ) from None
    except UnsupportedAlgorithm:
        raise CredentialError(
            f"{path}: the PKCS#12 file uses an unsupported encryption; export it again "
            "with AES-256 (e.g. openssl pkcs12 -export without -legacy)"
        ) from None
    if cert is None or key is None:
        raise CredentialError(
            f"{path}: the PKCS#12 file must hold both the pass certificate and its private key"
        )
    return cert, _signing_key(key, path), path, path


def _signing_key(key: object, path: Path) -> SigningKey:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise CredentialError(f"{path}: the private key must be RSA or EC to sign passes")


def _public_der(public_key: object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _subject_attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    if not values:
        return ""
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _check_issued_by(
    cert: x509.Certificate, cert_source: Path, wwdr: x509.Certificate, wwdr_source: Path
) -> None:
    wwdr_name = wwdr.subject.rfc4514_string()
    try:
        cert.verify_directly_issued_by(wwdr)
    except ValueError:
        reason = f"it was issued by '{cert.issuer.rfc4514_string()}', not by '{wwdr_name}'"
    except InvalidSignature:
        reason = f"'{wwdr_name}' has the right name but its key did not sign it"
    except TypeError:
        reason = f"'{wwdr_name}' uses a key type that cannot be checked"
    else:
        return
    raise CredentialError(
        f"{cert_source}: the certificate is not issued by the WWDR certificate in "
        f"{wwdr_source}: {reason}; pair the certificate with Apple WWDR G4 "
        "(the G1 intermediate expired in February 2023)"
    )
