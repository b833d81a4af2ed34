"""Loyalty programs: tiers, earning rate and pass design."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.program import (
    AppleDesign,
    Program,
    Tier,
    rgb_triple,
    validate_program,
    validate_tiers,
)

TIERS = (Tier("Bronze", 0), Tier("Silver", 100), Tier("Gold", 500))
DESIGN = AppleDesign(
    pass_type_identifier="pass.com.example.loyalty",
    team_identifier="ABCDE12345",
    organization_name="Example Coffee",
    description="Example Coffee loyalty card",
)
PROGRAM = Program(
    id="coffee",
    name="Example Coffee",
    tiers=TIERS,
    points_per_unit=Decimal("1"),
    apple=DESIGN,
)


def _refusal(program: Program, *, development: bool = False) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_program(program, development=development)
    return caught.value


@pytest.mark.parametrize(
    ("points", "tier"),
    [
        (0, "Bronze"),
        (1, "Bronze"),
        (99, "Bronze"),
        (100, "Silver"),
        (101, "Silver"),
        (499, "Silver"),
        (500, "Gold"),
        (10**15, "Gold"),
    ],
)
def test_customer_reaches_the_highest_tier_their_points_allow(points: int, tier: str) -> None:
    assert PROGRAM.tier_for(points) == tier


def test_negative_balance_stays_in_the_first_tier() -> None:
    assert PROGRAM.tier_for(-5) == "Bronze"


def test_single_tier_program_puts_everyone_in_it() -> None:
    program = replace(PROGRAM, tiers=(Tier("Member", 0),))
    assert program.tier_for(0) == "Member"
    assert program.tier_for(10**9) == "Member"


def test_sound_tiers_are_accepted() -> None:
    validate_tiers(TIERS)
    validate_tiers((Tier("Member", 0),))


@pytest.mark.parametrize(
    "tiers",
    [
        pytest.param((), id="empty"),
        pytest.param((Tier("Silver", 100), Tier("Gold", 500)), id="first-not-zero"),
        pytest.param((Tier("Bronze", 1),), id="single-not-zero"),
        pytest.param((Tier("Bronze", 0), Tier("Bronze", 100)), id="duplicate-name"),
        pytest.param((Tier("Bronze", 0), Tier("Bronze ", 100)), id="duplicate-after-trim"),
        pytest.param((Tier("Bronze", 0), Tier("  ", 100)), id="blank-name"),
        pytest.param((Tier("Bronze", 0), Tier("Silver", 0)), id="equal-thresholds"),
        pytest.param(
            (Tier("Bronze", 0), Tier("Silver", 500), Tier("Gold", 100)), id="falling-thresholds"
        ),
    ],
)
def test_unusable_tiers_are_refused(tiers: tuple[Tier, ...]) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_tiers(tiers)
    assert caught.value.field == "tiers"


def test_sound_program_is_accepted_in_production_and_development() -> None:
    validate_program(PROGRAM, development=False)
    validate_program(PROGRAM, development=True)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "Coffee"}, "id"),
        ({"id": "-coffee"}, "id"),
        ({"id": "coffee shop"}, "id"),
        ({"id": "c" * 64}, "id"),
        ({"name": "   "}, "name"),
        ({"tiers": ()}, "tiers"),
        ({"points_per_unit": Decimal("-0.01")}, "points_per_unit"),
        ({"points_per_unit": Decimal("10000.01")}, "points_per_unit"),
        ({"points_per_unit": Decimal("Infinity")}, "points_per_unit"),
    ],
)
def test_program_refusal_names_the_field(change: dict[str, object], field: str) -> None:
    assert _refusal(replace(PROGRAM, **change)).field == field  # type: ignore[arg-type]


@pytest.mark.parametrize("program_id", ["c", "0", "coffee-2", "c" * 63])
def test_program_ids_of_the_documented_shape_are_accepted(program_id: str) -> None:
    validate_program(replace(PROGRAM, id=program_id), development=False)


@pytest.mark.parametrize("rate", [Decimal("0"), Decimal("0.5"), Decimal("10000")])
def test_points_per_unit_within_range_is_accepted(rate: Decimal) -> None:
    validate_program(replace(PROGRAM, points_per_unit=rate), development=False)


def test_points_per_unit_nan_is_refused_naming_the_field() -> None:
    assert _refusal(replace(PROGRAM, points_per_unit=Decimal("NaN"))).field == "points_per_unit"


def test_program_id_with_a_trailing_newline_is_refused() -> None:
    assert _refusal(replace(PROGRAM, id="coffee\n")).field == "id"


@pytest.mark.parametrize(
    ("apple_change", "field"),
    [
        ({"pass_type_identifier": "com.example.loyalty"}, "apple.pass_type_identifier"),
        ({"pass_type_identifier": "pass."}, "apple.pass_type_identifier"),
        ({"pass_type_identifier": "pass"}, "apple.pass_type_identifier"),
        ({"organization_name": " "}, "apple.organization_name"),
        ({"background_color": "rgb(256, 0, 0)"}, "apple.background_color"),
        ({"foreground_color": "rgb(0, 256, 0)"}, "apple.foreground_color"),
        ({"label_color": "rgb(0, 0, 256)"}, "apple.label_color"),
        ({"background_color": "#ffffff"}, "apple.background_color"),
        ({"background_color": "rgb(1, 2)"}, "apple.background_color"),
        ({"background_color": "rgb(-1, 2, 3)"}, "apple.background_color"),
        ({"background_color": "rgba(1, 2, 3, 0.5)"}, "apple.background_color"),
        ({"label_color": "rgb(1000, 0, 0)"}, "apple.label_color"),
    ],
)
def test_design_refusal_names_the_apple_field(apple_change: dict[str, str], field: str) -> None:
    program = replace(PROGRAM, apple=replace(DESIGN, **apple_change))
    assert _refusal(program).field == field
    assert _refusal(program, development=True).field == field


def test_missing_description_is_refused_naming_the_description() -> None:
    program = replace(PROGRAM, apple=replace(DESIGN, description="  "))
    assert _refusal(program).field == "apple.description"


def test_missing_description_is_refused() -> None:
    _refusal(replace(PROGRAM, apple=replace(DESIGN, description="")))


@pytest.mark.parametrize("colour", ["rgb(0, 0, 0)", "rgb(255, 255, 255)", "rgb(1,2,3)"])
def test_colours_from_0_to_255_are_accepted(colour: str) -> None:
    design = replace(DESIGN, background_color=colour, foreground_color=colour, label_color=colour)
    validate_program(replace(PROGRAM, apple=design), development=False)


def test_colour_with_non_ascii_digits_is_refused() -> None:
    program = replace(PROGRAM, apple=replace(DESIGN, background_color="rgb(\u0662\u0660, 40, 80)"))
    assert _refusal(program).field == "apple.background_color"


@pytest.mark.parametrize("team_id", ["dev-team", "local", "abcde12345", "ABCDE1234"])
def test_free_form_team_id_is_refused_in_production(team_id: str) -> None:
    program = replace(PROGRAM, apple=replace(DESIGN, team_identifier=team_id))
    assert _refusal(program, development=False).field == "apple.team_identifier"


@pytest.mark.parametrize("team_id", ["dev-team", "local", "abcde12345"])
def test_free_form_team_id_is_accepted_in_development(team_id: str) -> None:
    program = replace(PROGRAM, apple=replace(DESIGN, team_identifier=team_id))
    validate_program(program, development=True)


@pytest.mark.parametrize(
    ("colour", "triple"),
    [
        ("rgb(20, 40, 80)", (20, 40, 80)),
        ("rgb(0,0,0)", (0, 0, 0)),
        ("rgb( 255 , 1 ,2 )", (255, 1, 2)),
    ],
)
def test_rgb_triple_reads_apple_colours(colour: str, triple: tuple[int, int, int]) -> None:
    assert rgb_triple(colour) == triple


@pytest.mark.parametrize("colour", ["", "#142850", "rgb(20, 40)", "20, 40, 80", "RGB(1, 2, 3)"])
def test_rgb_triple_refuses_what_is_not_an_rgb_colour(colour: str) -> None:
    with pytest.raises(InvalidInput):
        rgb_triple(colour)


def test_new_design_bumps_the_design_version_and_keeps_the_rest() -> None:
    new_design = replace(DESIGN, background_color="rgb(0, 0, 0)")
    changed = PROGRAM.with_design(new_design)
    assert changed.apple == new_design
    assert changed.design_version == PROGRAM.design_version + 1
    assert replace(changed, apple=DESIGN, design_version=PROGRAM.design_version) == PROGRAM


def test_each_design_change_bumps_the_version_again() -> None:
    assert PROGRAM.with_design(DESIGN).with_design(DESIGN).design_version == 3


def test_design_change_leaves_the_original_program_untouched() -> None:
    PROGRAM.with_design(replace(DESIGN, logo_text="New"))
    assert PROGRAM.design_version == 1
    assert PROGRAM.apple == DESIGN
