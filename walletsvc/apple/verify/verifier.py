"""Run the offline checks on a .pkpass in order and collect them into a report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from walletsvc.apple.verify import bundle, chain, signature
from walletsvc.apple.verify.report import Check, Outcome, Problem, Report, Status

__all__ = ["load_ca_file", "read_bundle", "verify_pkpass"]

T = TypeVar("T")


def verify_pkpass(
    data: bytes,
    *,
    roots: Sequence[x509.Certificate] | None = None,
    now: datetime | None = None,
) -> Report:
    """Run every check on the bundle bytes; give `roots` to check the chain up to them."""
    run = _Runner()
    files = run("bundle.zip", bundle.open_zip, data)
    run("bundle.files", bundle.check_required_files, files)
    found = files or {}
    pass_json, manifest, cms = (
        found.get(name) for name in ("pass.json", "manifest.json", "signature")
    )
    document = run("pass.json", bundle.check_pass_json, pass_json)
    run("manifest", bundle.check_manifest, files, manifest)
    message = run("signature.cms", signature.parse_signature, cms)
    run("signature.detached", signature.check_detached, message)
    signed_at = run("signature.signing_time", signature.check_signing_time, message)
    run("signature.message_digest", signature.check_message_digest, message, manifest)
    run("signature.valid", signature.check_signer_signature, message, manifest)
    intermediate = run("chain.intermediate", chain.check_intermediate, message)
    run("chain.root", partial(chain.check_root, roots=roots), intermediate)
    validity = partial(
        chain.check_validity,
        intermediate=intermediate,
        roots=roots,
        signing_time=signed_at,
        now=now or datetime.now(UTC),
    )
    run("chain.validity", validity, message)
    run("identity", chain.check_identity, message, document)
    return Report(tuple(run.checks))


def read_bundle(path: Path) -> bytes:
    """Read a bundle file, but no more than one byte past the size cap."""
    with path.open("rb") as handle:
        return handle.read(bundle.MAX_BUNDLE_BYTES + 1)


def load_ca_file(path: Path) -> list[x509.Certificate]:
    """Load trusted root certificates (PEM, possibly several, or DER); raise ValueError."""
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ValueError(
            f"{path}: not a readable certificate (PEM or DER); Apple's root is "
            "AppleIncRootCertificate.cer from Apple's certificate authority page"
        ) from None


class _Runner:
    """Record checks in order; skip those whose inputs an earlier check could not provide."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def __call__(self, name: str, check: Callable[..., Outcome[T]], *inputs: object) -> T | None:
        if any(value is None for value in inputs):
            self.checks.append(Check(name, Status.SKIP, "not checked: an earlier check failed"))
            return None
        try:
            outcome = check(*inputs)
        except Problem as problem:
            outcome = Outcome(Status.FAIL, str(problem))
        except Exception as exc:  # hostile input may break a parser anywhere: report, never crash
            outcome = Outcome(
                Status.FAIL,
                f"could not be checked ({type(exc).__name__}); the file is damaged or not what "
                "this check expects",
            )
        self.checks.append(Check(name, outcome.status, outcome.detail))
        return outcome.value
