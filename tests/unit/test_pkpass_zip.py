"""The hand-written .pkpass zip is one any reader accepts, laid out exactly and repeatably."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.helpers import verify_pkpass
from walletsvc.apple import pkpass
from walletsvc.apple.credentials import SigningIdentity, load_signing_identity
from walletsvc.apple.dev_material import DevAppleMaterial, ensure_dev_apple_material
from walletsvc.apple.images import placeholder_images
from walletsvc.apple.pkpass import PkpassBuilder, PreparedAssets

PASS_TYPE_ID = "pass.com.example.walletsvc.zip"
TEAM_ID = "ZIPTEAM42"
# Big enough that a 16-bit size or offset would overflow, incompressible like real artwork.
LARGE_STRIP = os.urandom(150_000)

needs_unzip = pytest.mark.skipif(shutil.which("unzip") is None, reason="needs Info-ZIP unzip")


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
    files["strip.png"] = LARGE_STRIP
    files["de.lproj/pass.strings"] = '"points" = "Punkte für Sie";\n'.encode()
    files["fr.lproj/pass.strings"] = b""
    files["ja.lproj/ロゴ.png"] = b"a name outside ASCII"
    return builder.prepare_assets(files)


def pass_json(serial: str, points: int = 0) -> bytes:
    document = {
        "formatVersion": 1,
        "passTypeIdentifier": PASS_TYPE_ID,
        "teamIdentifier": TEAM_ID,
        "serialNumber": serial,
        "organizationName": "Café Exemple",
        "description": "Loyalty card",
        "storeCard": {"primaryFields": [{"key": "points", "label": "Points", "value": points}]},
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def test_bundle_passes_zipfile_crc_checks_with_the_expected_entry_metadata(
    builder: PkpassBuilder, assets: PreparedAssets
) -> None:
    body = pass_json("Z1")
    with zipfile.ZipFile(io.BytesIO(builder.build(body, assets))) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert archive.read("pass.json") == body
        for name, data in assets.files.items():
            assert archive.read(name) == data

    assert [info.filename for info in infos] == [
        "pass.json",
        *sorted(assets.files),
        "manifest.json",
        "signature",
    ]
    for info in infos:
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.compress_size == info.file_size
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.create_system == 3  # Unix, so the mode below applies
        assert info.external_attr >> 16 == 0o100644
        assert info.flag_bits == (0x800 if not info.filename.isascii() else 0)


def test_local_headers_agree_with_the_central_directory_and_nothing_is_left_over(
    builder: PkpassBuilder, assets: PreparedAssets
) -> None:
    bundle = builder.build(pass_json("Z2"), assets)
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        infos = archive.infolist()

    expected_offset = 0
    for info in infos:
        assert info.header_offset == expected_offset, info.filename
        (signature, _, flags, method, _, _, crc, csize, usize, name_len, extra_len) = (
            struct.unpack_from("<IHHHHHIIIHH", bundle, info.header_offset)
        )
        name = bundle[info.header_offset + 30 : info.header_offset + 30 + name_len]
        assert signature == 0x04034B50
        assert (flags, method, crc, csize, usize) == (
            info.flag_bits,
            0,
            info.CRC,
            info.compress_size,
            info.file_size,
        )
        assert name.decode("utf-8") == info.filename
        assert extra_len == 0
        expected_offset = info.header_offset + 30 + name_len + info.file_size

    # The central directory follows the last entry, and the end record closes the file.
    (end_signature, _, _, count, total, size, offset, comment_len) = struct.unpack_from(
        "<IHHHHIIH", bundle, len(bundle) - 22
    )
    assert end_signature == 0x06054B50
    assert count == total == len(infos)
    assert offset == expected_offset
    assert offset + size + 22 == len(bundle)
    assert comment_len == 0


@needs_unzip
def test_info_zip_unzip_tests_the_bundle_clean(
    builder: PkpassBuilder, assets: PreparedAssets, tmp_path: Path
) -> None:
    path = tmp_path / "pass.pkpass"
    path.write_bytes(builder.build(pass_json("Z3"), assets))

    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def test_manifest_digests_match_and_the_signature_verifies(
    builder: PkpassBuilder, assets: PreparedAssets, material: DevAppleMaterial, tmp_path: Path
) -> None:
    bundle = builder.build(pass_json("Z4", points=120), assets)

    document = verify_pkpass(bundle, material.ca_certificate, tmp_path)

    assert document["serialNumber"] == "Z4"
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        manifest = archive.read("manifest.json")
    # The manifest is the bytes prepare_assets serialised, pass.json's digest put in front.
    assert manifest.endswith(assets.manifest_tail)
    assert set(json.loads(manifest)) == {"pass.json", *assets.files}


def test_same_pass_and_signature_give_the_same_bytes(
    builder: PkpassBuilder, assets: PreparedAssets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real signature carries signingTime; with it fixed, the bundle is a pure function.
    monkeypatch.setattr(pkpass, "sign_manifest", lambda manifest, identity: b"fixed signature")
    body = pass_json("Z5")

    first = builder.build(body, assets)
    again = builder.build(body, assets)
    other_design = builder.build(body, builder.prepare_assets(dict(assets.files)))

    assert first == again == other_design


def test_assets_prepared_by_hand_still_build(
    builder: PkpassBuilder, assets: PreparedAssets, material: DevAppleMaterial, tmp_path: Path
) -> None:
    by_hand = PreparedAssets(
        files=assets.files, digests=assets.digests, manifest_tail=assets.manifest_tail
    )

    bundle = builder.build(pass_json("Z6"), by_hand)

    verify_pkpass(bundle, material.ca_certificate, tmp_path)
    assert by_hand == assets


def test_every_pass_of_one_design_shares_the_asset_bytes(
    builder: PkpassBuilder, assets: PreparedAssets
) -> None:
    short, long = pass_json("Z7"), pass_json("Z8-" + "x" * 500)

    first, second = builder.build(short, assets), builder.build(long, assets)

    with zipfile.ZipFile(io.BytesIO(first)) as a, zipfile.ZipFile(io.BytesIO(second)) as b:
        for name in assets.files:
            assert a.read(name) == b.read(name) == assets.files[name]
            assert b.getinfo(name).header_offset - a.getinfo(name).header_offset == len(long) - len(
                short
            )
