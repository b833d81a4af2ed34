"""Check the `signature` file: a detached CMS SignedData over manifest.json with a signingTime.

CMS SignedData is RFC 5652 (https://www.rfc-editor.org/rfc/rfc5652), parsed with pyasn1-modules;
cryptography verifies the signature itself. Apple's requirements (detached, signingTime):
https://developer.apple.com/documentation/walletpasses/building-a-pass
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder, encoder  # type: ignore[import-untyped]
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from pyasn1.type import univ  # type: ignore[import-untyped]
from pyasn1_modules import rfc5280, rfc5652  # type: ignore[import-untyped]

from walletsvc.apple.verify.report import Outcome, Problem, ok, quote, when

__all__ = [
    "WWDR_HINT",
    "SignedMessage",
    "check_detached",
    "check_message_digest",
    "check_signer_signature",
    "check_signing_time",
    "common_name",
    "parse_signature",
]

WWDR_HINT = "Apple WWDR G4 (the G1 intermediate expired in February 2023)"
# A signature holds two or three certificates (a few KB); more is garbage, not worth decoding.
_MAX_SIGNATURE_BYTES = 256 * 1024

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
_DIGESTS: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "1.3.14.3.2.26": hashes.SHA1,
}
# Signature algorithm OID -> the digest it implies (None: the signer's digestAlgorithm decides).
_RSA_ALGORITHMS: Mapping[str, str | None] = {
    "1.2.840.113549.1.1.1": None,  # rsaEncryption
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.11": "sha256",
}
_ECDSA_ALGORITHMS: Mapping[str, str | None] = {
    "1.2.840.10045.2.1": None,  # id-ecPublicKey, which some signers write here
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.2": "sha256",
}
_CERTIFICATE_ERRORS = (
    PyAsn1Error,
    ValueError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
)
_NO_SIGNING_DATE = "iOS rejects the pass ('Signature must contain a signing date')"
_NOT_TIED = "nothing ties the signature to manifest.json"


@dataclass(frozen=True)
class SignedMessage:
    """The parts of a one-signer CMS SignedData that the checks need."""

    attached: int | None  # size of the embedded content, None when detached
    digest_oid: str
    signature_oid: str
    signature: bytes
    signed_attributes: Mapping[str, Sequence[bytes]] | None  # type OID -> DER values
    signed_attributes_der: bytes | None  # what the signature covers, when there are attributes
    signer: x509.Certificate
    others: tuple[x509.Certificate, ...]  # every other embedded certificate


def parse_signature(der: bytes) -> Outcome[SignedMessage]:
    """Parse the signature file as DER CMS SignedData with one signer and its certificate."""
    if len(der) > _MAX_SIGNATURE_BYTES:
        raise Problem(f"the signature file is {len(der)} bytes, far too big for a pass signature")
    try:
        info, rest = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
        if rest or str(info["contentType"]) != _OID_SIGNED_DATA:
            raise PyAsn1Error("not a lone SignedData")
        signed, rest = decoder.decode(bytes(info["content"]), asn1Spec=rfc5652.SignedData())
        if rest:
            raise PyAsn1Error("trailing bytes")
    except (PyAsn1Error, RecursionError):
        raise Problem(
            "the signature file is not a DER CMS (PKCS#7) SignedData; sign manifest.json again "
            "(openssl smime -sign -binary -outform DER, or walletsvc's signer)"
        ) from None
    if len(signed["signerInfos"]) != 1:
        raise Problem(f"the signature has {len(signed['signerInfos'])} signers; it needs one")
    encap = signed["encapContentInfo"]
    if str(encap["eContentType"]) != _OID_DATA:
        raise Problem("the signature signs something other than plain data (id-data)")
    certificates = _certificates(signed)
    signer_info = signed["signerInfos"][0]
    signer = _find_signer(signer_info["sid"], certificates)
    content = encap["eContent"]
    attributes, attributes_der = _signed_attributes(signer_info)
    message = SignedMessage(
        attached=len(content) if content.isValue else None,
        digest_oid=str(signer_info["digestAlgorithm"]["algorithm"]),
        signature_oid=str(signer_info["signatureAlgorithm"]["algorithm"]),
        signature=bytes(signer_info["signature"]),
        signed_attributes=attributes,
        signed_attributes_der=attributes_der,
        signer=signer,
        others=tuple(cert for cert in certificates if cert != signer),
    )
    return ok(
        f"a DER CMS SignedData signed by {quote(common_name(signer))} with "
        f"{len(certificates)} embedded certificates",
        message,
    )


def check_detached(message: SignedMessage) -> Outcome[bool]:
    """Require a detached signature: the content is manifest.json, not a copy inside."""
    if message.attached is not None:
        raise Problem(
            f"the signature embeds a copy of the signed content ({message.attached} bytes); "
            "Wallet wants a detached signature over manifest.json: sign with the detached "
            "option (openssl smime -sign without -nodetach)"
        )
    return ok("no embedded content", True)


def check_signing_time(message: SignedMessage) -> Outcome[datetime]:
    """Require exactly one signingTime signed attribute; return it."""
    value = _single_attribute(message, _OID_SIGNING_TIME, "signingTime", _NO_SIGNING_DATE)
    try:
        time, rest = decoder.decode(value, asn1Spec=rfc5280.Time())
        moment = time.getComponent().asDateTime
    except (PyAsn1Error, ValueError):
        raise Problem(
            f"the signingTime attribute is not a valid time; {_NO_SIGNING_DATE}"
        ) from None
    if rest or not isinstance(moment, datetime) or moment.tzinfo is None:
        raise Problem(f"the signingTime attribute is not a valid UTC time; {_NO_SIGNING_DATE}")
    signed_at = moment.astimezone(UTC)
    return ok(f"signed at {when(signed_at)}", signed_at)


def check_message_digest(message: SignedMessage, manifest: bytes) -> Outcome[bool]:
    """Require the messageDigest attribute to be the digest of this manifest.json."""
    algorithm = _digest(message)
    value = _single_attribute(message, _OID_MESSAGE_DIGEST, "messageDigest", _NOT_TIED)
    try:
        digest, rest = decoder.decode(value, asn1Spec=univ.OctetString())
    except PyAsn1Error:
        raise Problem(f"the messageDigest attribute is unreadable; {_NOT_TIED}") from None
    hasher = hashes.Hash(algorithm)
    hasher.update(manifest)
    if rest or bytes(digest) != hasher.finalize():
        raise Problem(
            "the signature was made over other bytes than this manifest.json: the manifest "
            "changed after signing, or the signature belongs to another pass; sign the final "
            "manifest.json again"
        )
    return ok(f"messageDigest equals the {algorithm.name.upper()} of manifest.json", True)


def check_signer_signature(message: SignedMessage, manifest: bytes) -> Outcome[bool]:
    """Verify the signer's RSA PKCS#1 v1.5 or ECDSA signature with its certificate's key."""
    algorithm = _digest(message)
    # Without signed attributes the signature covers the content itself (RFC 5652 5.4).
    signed = message.signed_attributes_der
    covered = signed if signed is not None else manifest
    key, oid = message.signer.public_key(), message.signature_oid
    try:
        if oid in _RSA_ALGORITHMS and isinstance(key, rsa.RSAPublicKey):
            _same_digest(_RSA_ALGORITHMS[oid], algorithm)
            key.verify(message.signature, covered, padding.PKCS1v15(), algorithm)
            kind = "RSA PKCS#1 v1.5"
        elif oid in _ECDSA_ALGORITHMS and isinstance(key, ec.EllipticCurvePublicKey):
            _same_digest(_ECDSA_ALGORITHMS[oid], algorithm)
            key.verify(message.signature, covered, ec.ECDSA(algorithm))
            kind = "ECDSA"
        else:
            raise Problem(
                f"signature algorithm {oid} with a {type(key).__name__} is not supported; "
                "sign with an RSA (PKCS#1 v1.5) or EC pass certificate key"
            )
    except InvalidSignature:
        raise Problem(
            "the signature does not verify with the signer certificate's key: it was made "
            "with another key or its signed attributes were altered; sign again with the key "
            "that belongs to the pass certificate"
        ) from None
    return ok(f"{kind} with {algorithm.name.upper()} verifies with the signer certificate", True)


def common_name(cert: x509.Certificate) -> str:
    """Return a certificate's CN, or its whole subject when it has none."""
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = values[0].value if values else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _certificates(signed: Any) -> list[x509.Certificate]:
    choices = signed["certificates"]
    if not choices.isValue:
        raise Problem(
            "the signature embeds no certificates; sign so that the pass certificate and "
            f"{WWDR_HINT} are included"
        )
    found = []
    for choice in choices:
        if choice.getName() != "certificate":
            continue
        try:
            cert = x509.load_der_x509_certificate(encoder.encode(choice["certificate"]))
            # cryptography parses lazily: touch every field the checks use, so a damaged
            # certificate fails here with a clear message instead of in a later check.
            _ = (cert.subject, cert.issuer, cert.extensions, cert.public_key())
            _ = (cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc)
        except _CERTIFICATE_ERRORS:
            raise Problem(
                "a certificate embedded in the signature is damaged or has an unsupported key"
            ) from None
        found.append(cert)
    return found


def _find_signer(sid: Any, certificates: Sequence[x509.Certificate]) -> x509.Certificate:
    for cert in certificates:
        if sid.getName() == "issuerAndSerialNumber":
            wanted = sid["issuerAndSerialNumber"]
            issuer = encoder.encode(wanted["issuer"])
            if cert.serial_number == int(wanted["serialNumber"]) and (
                cert.issuer.public_bytes() == issuer
            ):
                return cert
        elif _subject_key_id(cert) == bytes(sid["subjectKeyIdentifier"]):
            return cert
    raise Problem(
        "the signer's certificate is not embedded in the signature; sign with the pass "
        "certificate included (not with openssl's -nocerts)"
    )


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _signed_attributes(signer_info: Any) -> tuple[dict[str, list[bytes]] | None, bytes | None]:
    attributes = signer_info["signedAttrs"]
    if not attributes.isValue:
        return None, None
    found: dict[str, list[bytes]] = {}
    for attribute in attributes:
        values = found.setdefault(str(attribute["attrType"]), [])
        values.extend(bytes(value) for value in attribute["attrValues"])
    # RFC 5652 5.4: the signature covers the attributes encoded as a plain SET OF (tag 0x31),
    # not with the [0] IMPLICIT tag (0xA0) they carry inside SignerInfo; the lengths are equal.
    der = bytes(encoder.encode(attributes))
    return found, b"\x31" + der[1:]


def _single_attribute(message: SignedMessage, oid: str, what: str, consequence: str) -> bytes:
    if message.signed_attributes is None:
        raise Problem(
            f"the signature has no signed attributes at all, so no {what}; {consequence}: "
            "sign again without the no-attributes option (openssl -noattr)"
        )
    values = message.signed_attributes.get(oid, [])
    if len(values) != 1:
        raise Problem(f"the signature has {len(values)} {what} values, not one; {consequence}")
    return values[0]


def _digest(message: SignedMessage) -> hashes.HashAlgorithm:
    make = _DIGESTS.get(message.digest_oid)
    if make is None:
        raise Problem(
            f"the signer's digest algorithm {message.digest_oid} is not SHA-256 or SHA-1; "
            "sign with SHA-256"
        )
    return make()


def _same_digest(implied: str | None, algorithm: hashes.HashAlgorithm) -> None:
    if implied is not None and implied != algorithm.name:
        raise Problem(
            f"the signature algorithm uses {implied.upper()} but the signer's digest is "
            f"{algorithm.name.upper()}; sign again with one digest"
        )
