"""The offline verifier passes a well-made pass and names the check each tampering breaks."""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID

from walletsvc.apple.credentials import SigningIdentity, load_signing_identity
from walletsvc.apple.dev_material import ensure_dev_apple_material
from walletsvc.apple.images import placeholder_images
from walletsvc.apple.pkpass import PkpassBuilder, PreparedAssets, sign_manifest
from walletsvc.apple.verify import (
    MAX_BUNDLE_BYTES,
    MAX_MEMBERS,
    Report,
    Status,
    load_ca_file,
    render_text,
    verify_pkpass,
)

CERTS = Path(__file__).resolve().parents[2] / "certs_example"
DEV_CA = CERTS / "wwdr-dev-ca.pem"
PASS_TYPE_ID = "pass.com.example.walletsvc.demo"
TEAM_ID = "DEVTEAM123"
EVERY_CHECK = (
    "bundle.zip",
    "bundle.files",
    "pass.json",
    "manifest",
    "signature.cms",
    "signature.detached",
    "signature.signing_time",
    "signature.message_digest",
    "signature.valid",
    "chain.intermediate",
    "chain.root",
    "chain.validity",
    "identity",
)


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return load_signing_identity(
        wwdr=DEV_CA, certificate=CERTS / "pass-certificate.pem", private_key=CERTS / "pass-key.pem"
    )


@pytest.fixture(scope="module")
def builder(identity: SigningIdentity) -> PkpassBuilder:
    return PkpassBuilder(identity)


@pytest.fixture(scope="module")
def assets(builder: PkpassBuilder) -> PreparedAssets:
    files = placeholder_images((20, 40, 80), (255, 200, 0))
    files["de.lproj/pass.strings"] = b'"points" = "Punkte";\n'
    return builder.prepare_assets(files)


@pytest.fixture(scope="module")
def good_pass(builder: PkpassBuilder, assets: PreparedAssets) -> bytes:
    return builder.build(pass_json(), assets)


@pytest.fixture(scope="module")
def other_material(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    """A second development CA with a pass certificate for another pass type."""
    material = ensure_dev_apple_material(
        tmp_path_factory.mktemp("other"),
        pass_type_identifier="pass.com.example.someone.else",
        team_identifier=TEAM_ID,
    )
    return load_signing_identity(
        wwdr=material.ca_certificate,
        certificate=material.certificate,
        private_key=material.private_key,
    )


@pytest.fixture(scope="module")
def ec_identity(identity: SigningIdentity) -> SigningIdentity:
    """A Pass Type ID certificate with an EC key, issued by the development CA."""
    ca_key = serialization.load_pem_private_key(
        (CERTS / "wwdr-dev-ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, PASS_TYPE_ID),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {PASS_TYPE_ID}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, TEAM_ID),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(identity.wwdr.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    return SigningIdentity(
        certificate=certificate,
        private_key=key,
        wwdr=identity.wwdr,
        pass_type_identifier=PASS_TYPE_ID,
        team_identifier=TEAM_ID,
        not_valid_after=certificate.not_valid_after_utc,
    )


def pass_json(**changes: object) -> bytes:
    document: dict[str, object] = {
        "formatVersion": 1,
        "passTypeIdentifier": PASS_TYPE_ID,
        "teamIdentifier": TEAM_ID,
        "serialNumber": "SERIAL-1",
        "organizationName": "Example Coffee",
        "description": "Loyalty card",
        "webServiceURL": "https://wallet.example.com/apple",
        "authenticationToken": "0123456789abcdef0123",
        "storeCard": {"primaryFields": [{"key": "points", "label": "Points", "value": 10}]},
    }
    document.update(changes)
    return json.dumps(document).encode()


def unpack(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def manifest_of(files: dict[str, bytes]) -> bytes:
    listed = {
        name: hashlib.sha1(data).hexdigest()
        for name, data in files.items()
        if name not in ("manifest.json", "signature")
    }
    return json.dumps(listed).encode()


def signed_with_options(
    manifest: bytes, identity: SigningIdentity, *options: pkcs7.PKCS7Options
) -> bytes:
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(identity.certificate, identity.private_key, hashes.SHA256())
        .add_certificate(identity.wwdr)
        .sign(Encoding.DER, [pkcs7.PKCS7Options.Binary, *options])
    )


def with_signature(files: dict[str, bytes], signature: bytes) -> bytes:
    return zip_of({**files, "signature": signature})


def failed(report: Report) -> set[str]:
    return {check.name for check in report.checks if check.status is Status.FAIL}


def test_a_well_made_pass_passes_every_check_and_warns_that_the_root_was_not_checked(
    good_pass: bytes,
) -> None:
    report = verify_pkpass(good_pass)

    assert report.ok, render_text(report)
    assert [check.name for check in report.checks] == list(EVERY_CHECK)
    assert {c.name: c.status for c in report.checks if c.status is not Status.PASS} == {
        "chain.root": Status.WARN
    }
    assert "--ca" in next(c.detail for c in report.checks if c.name == "chain.root")


def test_a_well_made_pass_chains_to_the_development_ca_given_as_root(good_pass: bytes) -> None:
    report = verify_pkpass(good_pass, roots=load_ca_file(DEV_CA))

    assert all(check.status is Status.PASS for check in report.checks), render_text(report)
    assert render_text(report).endswith("OK")


def test_the_report_reads_as_json_with_a_verdict_and_every_check(good_pass: bytes) -> None:
    data = json.loads(json.dumps(verify_pkpass(good_pass).as_dict()))

    assert data["ok"] is True
    assert [check["name"] for check in data["checks"]] == list(EVERY_CHECK)
    assert {check["status"] for check in data["checks"]} == {"pass", "warn"}


def test_an_ecdsa_pass_certificate_passes_every_check(
    ec_identity: SigningIdentity, assets: PreparedAssets
) -> None:
    report = verify_pkpass(
        PkpassBuilder(ec_identity).build(pass_json(), assets), roots=load_ca_file(DEV_CA)
    )

    assert all(check.status is Status.PASS for check in report.checks), render_text(report)
    assert "ECDSA with SHA256 verifies" in render_text(report)


def test_a_sha512_signature_is_refused_as_wallet_expects_sha256(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = unpack(good_pass)
    signature = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(files["manifest.json"])
        .add_signer(identity.certificate, identity.private_key, hashes.SHA512())
        .add_certificate(identity.wwdr)
        .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )

    report = verify_pkpass(with_signature(files, signature))

    assert failed(report) == {"signature.message_digest", "signature.valid"}
    assert "not SHA-256 or SHA-1" in render_text(report)


def test_a_changed_pass_json_byte_fails_the_manifest(good_pass: bytes) -> None:
    files = unpack(good_pass)
    files["pass.json"] = files["pass.json"].replace(b"Example Coffee", b"Example Toffee")

    report = verify_pkpass(zip_of(files))

    assert failed(report) == {"manifest"}
    assert '"pass.json" changed since the manifest was made' in render_text(report)


def test_an_extra_file_not_in_the_manifest_fails_the_manifest(good_pass: bytes) -> None:
    files = {**unpack(good_pass), "extra.png": b"\x89PNG added later"}

    report = verify_pkpass(zip_of(files))

    assert failed(report) == {"manifest"}
    assert '"extra.png" in the bundle but not listed' in render_text(report)


def test_a_manifest_entry_for_a_missing_file_fails_the_manifest_even_when_signed(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = unpack(good_pass)
    listed = json.loads(files["manifest.json"])
    listed["footer.png"] = hashlib.sha1(b"never shipped").hexdigest()
    files["manifest.json"] = json.dumps(listed).encode()
    files["signature"] = sign_manifest(files["manifest.json"], identity)

    report = verify_pkpass(zip_of(files))

    assert failed(report) == {"manifest"}
    assert '"footer.png" listed but not in the bundle' in render_text(report)


def test_a_signature_over_other_bytes_fails_the_message_digest(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = unpack(good_pass)

    report = verify_pkpass(with_signature(files, sign_manifest(b'{"other":"x"}', identity)))

    assert failed(report) == {"signature.message_digest"}
    assert report.status_of("signature.valid") is Status.PASS


def test_a_signature_without_signing_time_fails_the_signing_time_check(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = unpack(good_pass)
    bare = signed_with_options(
        files["manifest.json"],
        identity,
        pkcs7.PKCS7Options.DetachedSignature,
        pkcs7.PKCS7Options.NoAttributes,
    )

    report = verify_pkpass(with_signature(files, bare))

    assert report.status_of("signature.signing_time") is Status.FAIL
    assert "Signature must contain a signing date" in render_text(report)
    # Without signed attributes the signature covers the manifest itself, and still verifies.
    assert report.status_of("signature.valid") is Status.PASS
    assert failed(report) == {"signature.signing_time", "signature.message_digest"}


def test_an_attached_signature_fails_the_detached_check(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = unpack(good_pass)
    attached = signed_with_options(files["manifest.json"], identity)

    report = verify_pkpass(with_signature(files, attached))

    assert failed(report) == {"signature.detached"}


def test_a_signature_without_the_wwdr_fails_the_intermediate_check(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = unpack(good_pass)
    lone = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(files["manifest.json"])
        .add_signer(identity.certificate, identity.private_key, hashes.SHA256())
        .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )

    report = verify_pkpass(with_signature(files, lone), roots=load_ca_file(DEV_CA))

    assert failed(report) == {"chain.intermediate"}
    assert "WWDR G4" in render_text(report)
    assert report.status_of("chain.root") is Status.SKIP


def test_a_certificate_for_another_pass_type_fails_the_identity_check(
    other_material: SigningIdentity, assets: PreparedAssets
) -> None:
    bundle = PkpassBuilder(other_material).build(pass_json(), assets)

    report = verify_pkpass(bundle)

    assert failed(report) == {"identity"}
    assert "pass.com.example.someone.else" in render_text(report)


def test_a_chain_to_another_root_fails_the_root_check(
    good_pass: bytes, other_material: SigningIdentity
) -> None:
    report = verify_pkpass(good_pass, roots=[other_material.wwdr])

    assert failed(report) == {"chain.root"}


def test_a_pass_certificate_expired_since_signing_only_warns(good_pass: bytes) -> None:
    later = datetime.now(UTC) + timedelta(days=365 * 30)

    report = verify_pkpass(good_pass, now=later)

    assert report.ok
    assert report.status_of("chain.validity") is Status.WARN


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"formatVersion": 2}, "formatVersion must be the number 1"),
        ({"formatVersion": True}, "formatVersion must be the number 1"),
        ({"serialNumber": ""}, "serialNumber must be a non-empty string"),
        ({"coupon": {}}, "exactly one style key"),
        ({"authenticationToken": "short"}, "at least 16 characters"),
    ],
)
def test_pass_json_without_what_wallet_needs_fails_the_pass_json_check(
    builder: PkpassBuilder, assets: PreparedAssets, changes: dict[str, object], complaint: str
) -> None:
    report = verify_pkpass(builder.build(pass_json(**changes), assets))

    assert failed(report) == {"pass.json"}
    assert complaint in render_text(report)


def test_a_plain_http_web_service_only_warns(
    builder: PkpassBuilder, assets: PreparedAssets
) -> None:
    bundle = builder.build(pass_json(webServiceURL="http://wallet.test/apple"), assets)

    report = verify_pkpass(bundle)

    assert report.ok
    assert report.status_of("pass.json") is Status.WARN


def test_a_bundle_without_icon_fails_the_required_files_check(
    good_pass: bytes, identity: SigningIdentity
) -> None:
    files = {name: data for name, data in unpack(good_pass).items() if name != "icon.png"}
    files["manifest.json"] = manifest_of(files)
    files["signature"] = sign_manifest(files["manifest.json"], identity)

    report = verify_pkpass(zip_of(files))

    assert failed(report) == {"bundle.files"}


@pytest.mark.parametrize(
    "bundle",
    [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 40],
    ids=["empty", "text", "broken-header"],
)
def test_garbage_fails_the_zip_check_and_skips_the_rest(bundle: bytes) -> None:
    report = verify_pkpass(bundle)

    assert failed(report) == {"bundle.zip"}
    assert all(check.status is Status.SKIP for check in report.checks[1:])


def test_a_truncated_download_fails_the_zip_check(good_pass: bytes) -> None:
    report = verify_pkpass(good_pass[: len(good_pass) // 2])

    assert failed(report) == {"bundle.zip"}


@pytest.mark.parametrize(
    "name", ["../evil.png", "lproj/../../evil", "/etc/passwd", "a\\b.png", "C:x", "a//b"]
)
def test_a_path_traversal_or_absolute_name_fails_the_zip_check(good_pass: bytes, name: str) -> None:
    report = verify_pkpass(zip_of({**unpack(good_pass), name: b"x"}))

    assert failed(report) == {"bundle.zip"}
    assert "relative paths" in render_text(report)


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pass.json", b"\x00" * (MAX_BUNDLE_BYTES + 1))
    assert len(out.getvalue()) < 100_000

    report = verify_pkpass(out.getvalue())

    assert failed(report) == {"bundle.zip"}
    assert "zip bomb" in render_text(report)


def test_a_zip_with_too_many_entries_is_refused() -> None:
    report = verify_pkpass(zip_of({f"f{number}": b"" for number in range(MAX_MEMBERS + 1)}))

    assert failed(report) == {"bundle.zip"}


def test_a_duplicate_entry_fails_the_zip_check(good_pass: bytes) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in unpack(good_pass).items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("pass.json", pass_json(serialNumber="other"))

    report = verify_pkpass(out.getvalue())

    assert failed(report) == {"bundle.zip"}


@pytest.mark.parametrize("signature", [b"", b"garbage", b"\x30\x80" * 100, b"\x30\x03\x02\x01\x01"])
def test_garbage_der_fails_the_cms_check(good_pass: bytes, signature: bytes) -> None:
    report = verify_pkpass(with_signature(unpack(good_pass), signature))

    assert failed(report) == {"signature.cms"}


def test_random_damage_never_raises(good_pass: bytes) -> None:
    rng = random.Random(1234)
    files = unpack(good_pass)
    for _ in range(150):
        damaged = bytearray(good_pass)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        signature = bytearray(files["signature"])
        signature[rng.randrange(len(signature))] ^= 1 << rng.randrange(8)

        for bundle in (bytes(damaged), with_signature(files, bytes(signature))):
            report = verify_pkpass(bundle, roots=load_ca_file(DEV_CA))
            assert [check.name for check in report.checks] == list(EVERY_CHECK)
