"""A .pkpass bundle is complete, hashed correctly and signed the way iOS checks it."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from walletsvc.apple.credentials import SigningIdentity, load_signing_identity
from walletsvc.apple.dev_material import DevAppleMaterial, ensure_dev_apple_material
from walletsvc.apple.images import placeholder_images
from walletsvc.apple.pkpass import (
    PKPASS_MEDIA_TYPE,
    PkpassBuilder,
    PreparedAssets,
    sign_manifest,
)

PASS_TYPE_ID = "pass.com.example.walletsvc.test"
TEAM_ID = "TESTTEAM42"


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> DevAppleMaterial:
    return ensure_dev_apple_material(
        tmp_path_factory.mktemp("apple"),
        pass_type_identifier=PASS_TYPE_ID,
        team_identifier=TEAM_ID,
    )


@pytest.fixture(scope="module")
def identity(material: DevAppleMaterial) -> SigningIdentity:
    return load_signing_identity(
        wwdr=material.ca_certificate,
        certificate=material.certificate,
        private_key=material.private_key,
    )


@pytest.fixture(scope="module")
def builder(identity: SigningIdentity) -> PkpassBuilder:
    return PkpassBuilder(identity)


@pytest.fixture(scope="module")
def assets(builder: PkpassBuilder) -> PreparedAssets:
    files = placeholder_images((20, 40, 80), (255, 200, 0))
    files["de.lproj/pass.strings"] = b'"points" = "Punkte";\n'
    files["strip.png"] = b"\x89PNG not really, but bytes are bytes"
    return builder.prepare_assets(files)


def pass_json(serial: str) -> bytes:
    return json.dumps(
        {
            "formatVersion": 1,
            "passTypeIdentifier": PASS_TYPE_ID,
            "teamIdentifier": TEAM_ID,
            "serialNumber": serial,
            "organizationName": "Example",
            "description": "Loyalty card",
            "storeCard": {},
        }
    ).encode()


def unpack(bundle: bytes, into: Path) -> dict[str, bytes]:
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    for name, data in files.items():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(data)
    return files


def openssl_verify(directory: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(directory / "signature"),
            "-content", str(directory / "manifest.json"),
            "-CAfile", str(ca), "-purpose", "any", "-out", "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


def cms_print(signature: Path) -> str:
    return subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(signature)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_manifest_lists_every_file_but_itself_and_the_signature(
    builder: PkpassBuilder, assets: PreparedAssets
) -> None:
    with zipfile.ZipFile(io.BytesIO(builder.build(pass_json("A1"), assets))) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["manifest.json"])

    expected = {
        name: hashlib.sha1(data).hexdigest()
        for name, data in files.items()
        if name not in ("manifest.json", "signature")
    }
    assert manifest == expected
    assert set(manifest) == {"pass.json", *assets.files}


def test_bundle_holds_pass_assets_manifest_and_signature_in_a_fixed_order(
    builder: PkpassBuilder, assets: PreparedAssets
) -> None:
    body = pass_json("A2")
    with zipfile.ZipFile(io.BytesIO(builder.build(body, assets))) as archive:
        infos = archive.infolist()
        assert archive.read("pass.json") == body
    assert [info.filename for info in infos] == [
        "pass.json",
        *sorted(assets.files),
        "manifest.json",
        "signature",
    ]
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
    assert PKPASS_MEDIA_TYPE == "application/vnd.apple.pkpass"


def test_signature_verifies_with_openssl_and_fails_after_tampering(
    builder: PkpassBuilder, assets: PreparedAssets, material: DevAppleMaterial, tmp_path: Path
) -> None:
    unpack(builder.build(pass_json("A3"), assets), tmp_path)

    ok = openssl_verify(tmp_path, material.ca_certificate)
    assert ok.returncode == 0, ok.stderr

    manifest = bytearray((tmp_path / "manifest.json").read_bytes())
    manifest[20] ^= 0x01
    (tmp_path / "manifest.json").write_bytes(bytes(manifest))
    tampered = openssl_verify(tmp_path, material.ca_certificate)
    assert tampered.returncode != 0


def test_signature_is_detached_sha256_with_a_current_signing_time(
    builder: PkpassBuilder, assets: PreparedAssets, tmp_path: Path
) -> None:
    unpack(builder.build(pass_json("A4"), assets), tmp_path)
    printed = cms_print(tmp_path / "signature")

    assert "eContent: <ABSENT>" in printed
    assert "signingTime" in printed
    signer_info = printed.split("signerInfos:", 1)[1]
    assert re.search(r"digestAlgorithm:\s*\n\s*algorithm: sha256", signer_info)
    stamp = re.search(r"UTCTIME:(\w{3} +\d+ \d\d:\d\d:\d\d \d{4}) GMT", signer_info)
    assert stamp is not None
    signed_at = datetime.strptime(stamp.group(1), "%b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=5)


def test_signature_embeds_the_wwdr_and_the_signer_certificate(
    builder: PkpassBuilder, assets: PreparedAssets, identity: SigningIdentity
) -> None:
    with zipfile.ZipFile(io.BytesIO(builder.build(pass_json("A5"), assets))) as archive:
        signature = archive.read("signature")
    embedded = pkcs7.load_der_pkcs7_certificates(signature)

    def der(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.DER)

    assert sorted(der(c) for c in embedded) == sorted(
        [der(identity.certificate), der(identity.wwdr)]
    )


def test_sign_manifest_covers_the_exact_bytes_even_with_line_feeds(
    identity: SigningIdentity, material: DevAppleMaterial, tmp_path: Path
) -> None:
    # A pretty-printed manifest has LF line endings; text-mode signing would hash CRLF instead.
    manifest = b'{\n  "pass.json": "0000000000000000000000000000000000000000"\n}\n'
    (tmp_path / "manifest.json").write_bytes(manifest)
    (tmp_path / "signature").write_bytes(sign_manifest(manifest, identity))

    result = openssl_verify(tmp_path, material.ca_certificate)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "../icon.png",
        "de.lproj/../../etc/passwd",
        "/icon.png",
        "images\\icon.png",
        "pass.json",
        "manifest.json",
        "signature",
        "",
        "de.lproj//pass.strings",
        "./icon@2x.png",
        "icon\n.png",
    ],
)
def test_bad_asset_names_are_refused(builder: PkpassBuilder, name: str) -> None:
    with pytest.raises(ValueError):
        builder.prepare_assets({"icon.png": b"png", name: b"data"})


def test_localised_and_retina_asset_names_are_accepted(builder: PkpassBuilder) -> None:
    names = ["icon.png", "icon@2x.png", "logo@3x.png", "de.lproj/pass.strings", "en.lproj/logo.png"]
    prepared = builder.prepare_assets({name: name.encode() for name in names})
    assert set(prepared.digests) == set(names)


def test_icon_is_required(builder: PkpassBuilder) -> None:
    with pytest.raises(ValueError, match=r"icon\.png"):
        builder.prepare_assets({"logo.png": b"png"})


def test_builder_is_safe_to_share_between_threads(
    builder: PkpassBuilder, assets: PreparedAssets, material: DevAppleMaterial, tmp_path: Path
) -> None:
    serials = [f"T{i:03d}" for i in range(50)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        bundles = list(pool.map(lambda s: builder.build(pass_json(s), assets), serials))

    for serial, bundle in zip(serials, bundles, strict=True):
        files = unpack(bundle, tmp_path / serial)
        assert json.loads(files["pass.json"])["serialNumber"] == serial
        manifest = json.loads(files["manifest.json"])
        assert manifest["pass.json"] == hashlib.sha1(files["pass.json"]).hexdigest()
        result = openssl_verify(tmp_path / serial, material.ca_certificate)
        assert result.returncode == 0, (serial, result.stderr)
