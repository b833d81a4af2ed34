"""Check the signer's certificates: the embedded WWDR, the root, validity and pass identity.

Pass Type ID certificates carry the pass type in the subject UID and the team in the OU:
https://developer.apple.com/documentation/walletpasses/building-a-pass
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from walletsvc.apple.verify.report import Outcome, Problem, Status, ok, quote, when
from walletsvc.apple.verify.signature import WWDR_HINT, SignedMessage, common_name

__all__ = ["check_identity", "check_intermediate", "check_root", "check_validity"]

_CHECK_ERRORS = (ValueError, TypeError, InvalidSignature)


def check_intermediate(message: SignedMessage) -> Outcome[x509.Certificate]:
    """Require an embedded CA certificate (the WWDR) that issued the signer; return it."""
    leaf = message.signer
    issuer = quote(leaf.issuer.rfc4514_string())
    named = [cert for cert in message.others if cert.subject == leaf.issuer]
    if not named:
        embedded = ", ".join(quote(c.subject.rfc4514_string()) for c in message.others)
        raise Problem(
            f"the pass certificate was issued by {issuer}, but the signature embeds no "
            f"certificate of that name (embedded: {embedded or 'none'}); include {WWDR_HINT} "
            "when signing"
        )
    for cert in named:
        try:
            leaf.verify_directly_issued_by(cert)
        except _CHECK_ERRORS:
            continue
        if not _is_ca(cert):
            raise Problem(f"the embedded issuer {issuer} is not a CA certificate")
        return ok(f"the pass certificate is issued by the embedded {issuer}", cert)
    raise Problem(
        f"the embedded {issuer} has the right name but did not sign the pass certificate "
        f"(another generation of the intermediate); embed {WWDR_HINT}"
    )


def check_root(
    intermediate: x509.Certificate, *, roots: Sequence[x509.Certificate] | None
) -> Outcome[bool]:
    """Require the intermediate to chain to a given root; warn when no root was given."""
    if roots is None:
        return Outcome(
            Status.WARN,
            "the root was not checked: give --ca with Apple Inc. Root "
            "(AppleIncRootCertificate.cer) to check that the intermediate chains to Apple",
            True,
        )
    root = _issuing_root(intermediate, roots)
    if root is None:
        given = ", ".join(quote(r.subject.rfc4514_string()) for r in roots)
        raise Problem(
            f"the intermediate {quote(intermediate.subject.rfc4514_string())} was issued by "
            f"{quote(intermediate.issuer.rfc4514_string())}, not by a root in --ca "
            f"({given or 'none'}); give the right root, or embed {WWDR_HINT}"
        )
    return ok(f"the intermediate chains to the root {quote(root.subject.rfc4514_string())}", True)


def check_validity(
    message: SignedMessage,
    *,
    intermediate: x509.Certificate | None,
    roots: Sequence[x509.Certificate] | None,
    signing_time: datetime | None,
    now: datetime,
) -> Outcome[bool]:
    """Require every known certificate of the chain to be valid at the signing time."""
    at = signing_time or now
    root = _issuing_root(intermediate, roots) if intermediate is not None else None
    chain = [("pass certificate", message.signer), ("intermediate", intermediate), ("root", root)]
    known = [(what, cert) for what, cert in chain if cert is not None]
    for what, cert in known:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if not start <= at <= end:
            raise Problem(
                f"the {what} {quote(common_name(cert))} was not valid at {when(at)} (valid "
                f"{when(start)} to {when(end)}); sign with a current "
                + (WWDR_HINT if what == "intermediate" else what)
            )
    basis = "the signing time" if signing_time else "the current time (no signingTime to use)"
    detail = f"{', '.join(what for what, _ in known)} valid at {basis}"
    expiry = message.signer.not_valid_after_utc
    if expiry < now:
        return Outcome(
            Status.WARN,
            f"{detail}; but the pass certificate has expired since ({when(expiry)}): renew it "
            "to sign new passes and updates",
            True,
        )
    return ok(detail, True)


def check_identity(message: SignedMessage, document: Mapping[str, Any]) -> Outcome[bool]:
    """Require the certificate's UID and OU to equal passTypeIdentifier and teamIdentifier."""
    uid = _subject_attribute(message.signer, NameOID.USER_ID)
    team = _subject_attribute(message.signer, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if uid is None or team is None:
        raise Problem(
            "the signer certificate lacks a single UID or OU in its subject: it is not a Pass "
            "Type ID certificate; create one in the Apple developer portal"
        )
    problems = []
    pass_type, team_id = document.get("passTypeIdentifier"), document.get("teamIdentifier")
    if pass_type != uid:
        problems.append(
            f"pass.json passTypeIdentifier is {quote(pass_type)} but the certificate's UID is "
            f"{quote(uid)}"
        )
    if team_id != team:
        problems.append(
            f"pass.json teamIdentifier is {quote(team_id)} but the certificate's OU is "
            f"{quote(team)}"
        )
    if problems:
        raise Problem(
            "; ".join(problems) + "; sign with the certificate of this pass type, or fix pass.json"
        )
    return ok(f"the certificate is for {quote(uid)} of team {quote(team)}", True)


def _issuing_root(
    intermediate: x509.Certificate, roots: Sequence[x509.Certificate] | None
) -> x509.Certificate | None:
    for root in roots or ():
        if root == intermediate:
            return root  # the intermediate is itself trusted, as the development CA is
        try:
            intermediate.verify_directly_issued_by(root)
        except _CHECK_ERRORS:
            continue
        return root
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _subject_attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
