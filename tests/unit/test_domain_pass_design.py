"""Design options of a program's passes: templates, extra fields, locations, tier names."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.program import (
    AppleDesign,
    BarcodeFormat,
    FieldGroup,
    LocalizedText,
    PassField,
    Program,
    Tier,
    fill_template,
    validate_program,
)

DESIGN = AppleDesign(
    pass_type_identifier="pass.com.example.loyalty",
    team_identifier="ABCDE12345",
    organization_name="Example Coffee",
    description="Example Coffee loyalty card",
)
PROGRAM = Program(
    id="coffee",
    name="Example Coffee",
    tiers=(Tier("Bronze", 0), Tier("Gold", 500, LocalizedText("Gold", "Gold"))),
    points_per_unit=Decimal("1"),
    apple=DESIGN,
)
FIELD = PassField("level", FieldGroup.SECONDARY, LocalizedText("Level", "Stufe"), "{tier}")


def refusal(**design: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_program(replace(PROGRAM, apple=replace(DESIGN, **design)), development=False)
    return caught.value


def test_a_rich_design_is_accepted() -> None:
    rich = replace(
        DESIGN,
        barcode_format=BarcodeFormat.CODE128,
        barcode_alt_text="{points} points · {serial}",
        fields=(FIELD, replace(FIELD, key="terms", group=FieldGroup.BACK, value="See {program}")),
        location_store_ids=("berlin-1", "hamburg.2"),
        location_text="{program}: {store} is nearby",
    )
    validate_program(replace(PROGRAM, apple=rich), development=False)


def test_old_designs_keep_their_defaults() -> None:
    assert DESIGN.barcode_format is BarcodeFormat.QR
    assert DESIGN.fields == () and DESIGN.location_store_ids == ()
    assert DESIGN.location_text == "{store}"


@pytest.mark.parametrize(
    ("design", "field"),
    [
        ({"barcode_alt_text": "{balance}"}, "apple.barcode_alt_text"),
        ({"fields": (replace(FIELD, value="{__class__}"),)}, "apple.fields[0].value"),
        ({"fields": (replace(FIELD, value="{points"),)}, "apple.fields[0].value"),
        ({"fields": (replace(FIELD, value="{0}"),)}, "apple.fields[0].value"),
        ({"fields": (replace(FIELD, key="1st"),)}, "apple.fields[0].key"),
        ({"fields": (replace(FIELD, label=LocalizedText(" ")),)}, "apple.fields[0].label"),
        ({"fields": (replace(FIELD, label=LocalizedText("a\nb")),)}, "apple.fields[0].label"),
        ({"fields": (FIELD,) * 11}, "apple.fields"),
        ({"location_store_ids": tuple(f"s{n}" for n in range(11))}, "apple.location_store_ids"),
        ({"location_store_ids": ("a", "a")}, "apple.location_store_ids"),
        ({"location_store_ids": ("no spaces",)}, "apple.location_store_ids"),
        ({"location_text": "{points} near you"}, "apple.location_text"),
    ],
)
def test_a_bad_design_option_is_refused_naming_it(design: dict[str, Any], field: str) -> None:
    assert refusal(**design).field == field


def test_unknown_placeholder_is_named_with_the_known_ones() -> None:
    error = refusal(barcode_alt_text="{customer_email}")
    assert "{customer_email}" in error.detail and "{points}" in error.detail


def test_blank_tier_display_name_is_refused() -> None:
    program = replace(PROGRAM, tiers=(Tier("Bronze", 0, LocalizedText("", "Bronze")),))
    with pytest.raises(InvalidInput) as caught:
        validate_program(program, development=False)
    assert caught.value.field == "tiers[0].display_name"


def test_templates_fill_only_their_placeholders() -> None:
    values = {"points": "740", "tier": "Gold"}
    assert fill_template("{points} pts, {tier}", values) == "740 pts, Gold"
    assert fill_template("no placeholders", values) == "no placeholders"


def test_texts_fall_back_to_english() -> None:
    assert LocalizedText("Gold", "Golden").in_language("de") == "Golden"
    assert LocalizedText("Gold").in_language("de") == "Gold"
    assert LocalizedText("Gold", "Golden").in_language("fr") == "Gold"
    assert Tier("Gold", 5).shown == LocalizedText("Gold")
