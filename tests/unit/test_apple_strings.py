"""English and German pass.strings: same keys, UTF-16, packed once with the design's assets."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import unpack
from walletsvc.apple.credentials import load_signing_identity
from walletsvc.apple.dev_material import ensure_dev_apple_material
from walletsvc.apple.pkpass import PkpassBuilder
from walletsvc.apple.strings import (
    LANGUAGES,
    decode_strings,
    encode_strings,
    pass_strings,
    strings_files,
)
from walletsvc.apple.wallet import ApplePassSigner
from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.pass_content import sample_contents
from walletsvc.domain.program import (
    AppleDesign,
    FieldGroup,
    LocalizedText,
    PassField,
    Program,
    Tier,
)

PROGRAM = Program(
    id="coffee",
    name="Example Coffee",
    tiers=(Tier("Bronze", 0), Tier("Gold", 500, LocalizedText("Gold", "Gold"))),
    points_per_unit=Decimal("1"),
    apple=AppleDesign(
        pass_type_identifier="pass.com.example.coffee",
        team_identifier="ABCDE12345",
        organization_name="Example Coffee",
        description="Example Coffee card",
        fields=(
            PassField(
                "member", FieldGroup.BACK, LocalizedText("Member since", "Mitglied seit"), "x"
            ),
        ),
    ),
)


def test_english_and_german_have_the_same_keys() -> None:
    tables = pass_strings(PROGRAM)
    assert tuple(tables) == LANGUAGES == ("en", "de")
    assert set(tables["en"]) == set(tables["de"])
    assert {"Tier", "Points", "Valid until", "Bronze", "Gold", "Member since"} <= set(tables["en"])
    assert tables["de"]["Valid until"] == "Gültig bis"
    assert tables["de"]["Member since"] == "Mitglied seit"
    assert all(key == text for key, text in tables["en"].items())


def test_every_change_message_keeps_its_placeholder_in_both_languages() -> None:
    for table in pass_strings(PROGRAM).values():
        for key, text in table.items():
            assert ("%@" in key) == ("%@" in text), key


def test_strings_files_are_utf16_with_a_byte_order_mark() -> None:
    files = strings_files(PROGRAM)
    assert set(files) == {"en.lproj/pass.strings", "de.lproj/pass.strings"}
    german = files["de.lproj/pass.strings"]
    assert german.startswith(b"\xff\xfe")
    text = german[2:].decode("utf-16-le")
    assert '"Valid until" = "Gültig bis";\n' in text
    assert decode_strings(german) == pass_strings(PROGRAM)["de"]


def test_quotes_and_backslashes_are_escaped() -> None:
    table = {'Say "hi"': 'Sag \\ "hallo"', "plain": "line\nbreak"}
    data = encode_strings(table)
    assert '"Say \\"hi\\"" = "Sag \\\\ \\"hallo\\"";' in data[2:].decode("utf-16-le")
    assert decode_strings(data) == table


def test_strings_are_the_same_bytes_every_time() -> None:
    assert strings_files(PROGRAM) == strings_files(replace(PROGRAM))


def test_one_english_text_with_two_german_translations_is_refused() -> None:
    clash = replace(
        PROGRAM,
        apple=replace(
            PROGRAM.apple,
            fields=(PassField("pts", FieldGroup.BACK, LocalizedText("Points", "Zähler"), "x"),),
        ),
    )
    with pytest.raises(InvalidInput) as caught:
        pass_strings(clash)
    assert caught.value.reason == "apple_rule"
    assert "'Points'" in caught.value.detail and "de.lproj" in caught.value.detail


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> ApplePassSigner:
    material = ensure_dev_apple_material(
        tmp_path_factory.mktemp("apple"),
        pass_type_identifier="pass.com.example.coffee",
        team_identifier="ABCDE12345",
    )
    identity = load_signing_identity(
        wwdr=material.ca_certificate,
        certificate=material.certificate,
        private_key=material.private_key,
    )
    return ApplePassSigner(PkpassBuilder(identity), "https://wallet.example.com/apple")


def test_bundle_assets_replace_stale_and_foreign_strings(signer: ApplePassSigner) -> None:
    stored = {
        "icon.png": b"png",
        "de.lproj/pass.strings": b"stale",
        "fr.lproj/pass.strings": b"lacks our keys",
        "de.lproj/logo.png": b"localized logo",
    }
    files = signer.bundle_assets(PROGRAM, stored)
    assert files["de.lproj/pass.strings"] == strings_files(PROGRAM)["de.lproj/pass.strings"]
    assert "fr.lproj/pass.strings" not in files
    assert files["de.lproj/logo.png"] == b"localized logo"
    assert files["icon.png"] == b"png"


async def test_signed_bundle_carries_both_languages(
    signer: ApplePassSigner, tmp_path: Path
) -> None:
    content = sample_contents(PROGRAM)[0]
    pass_json = signer.render(content)
    bundle = unpack(await signer.package(PROGRAM, pass_json, signer.default_assets(PROGRAM)))
    manifest = json.loads(bundle["manifest.json"])
    for language in LANGUAGES:
        assert f"{language}.lproj/pass.strings" in manifest
    tables = {lang: decode_strings(bundle[f"{lang}.lproj/pass.strings"]) for lang in LANGUAGES}
    labels = [
        field["label"] for group in json.loads(pass_json)["storeCard"].values() for field in group
    ]
    for label in labels:
        assert all(label in table for table in tables.values()), label
    assert {"strip.png", "strip@2x.png", "strip@3x.png"} <= set(bundle)
