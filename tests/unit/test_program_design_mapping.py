"""A program's design survives the JSON column, and rows written before the options load."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from walletsvc.domain.program import (
    AppleDesign,
    BarcodeFormat,
    FieldGroup,
    LocalizedText,
    PassField,
    Program,
    Tier,
)
from walletsvc.storage.mapping import program_from_row, program_to_row
from walletsvc.storage.tables import ProgramRow

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PROGRAM = Program(
    id="coffee",
    name="Example Coffee",
    tiers=(Tier("Bronze", 0), Tier("Platinum", 900, LocalizedText("Platinum", "Platin"))),
    points_per_unit=Decimal("1.5"),
    apple=AppleDesign(
        pass_type_identifier="pass.com.example.coffee",
        team_identifier="ABCDE12345",
        organization_name="Example Coffee",
        description="Example Coffee card",
        barcode_format=BarcodeFormat.AZTEC,
        barcode_alt_text="{points}",
        fields=(PassField("level", FieldGroup.BACK, LocalizedText("Level", "Stufe"), "{tier}"),),
        location_store_ids=("berlin", "hamburg"),
        location_text="{store} is near",
    ),
    created_at=NOW,
    updated_at=NOW,
)


def test_a_rich_design_round_trips_through_json() -> None:
    row = program_to_row(PROGRAM)
    # What the JSON column hands back: plain lists, dicts and strings.
    stored = row.model_copy(
        update={
            "tiers": json.loads(json.dumps(row.tiers)),
            "apple": json.loads(json.dumps(row.apple)),
        }
    )
    assert program_from_row(stored) == PROGRAM


def test_a_row_written_before_the_design_options_loads_with_defaults() -> None:
    old = ProgramRow(
        id="demo",
        name="Demo",
        points_per_unit="1",
        tiers=[{"name": "Bronze", "min_points": 0}, {"name": "Gold", "min_points": 100}],
        apple={
            "pass_type_identifier": "pass.com.example.demo",
            "team_identifier": "DEVTEAM123",
            "organization_name": "Demo",
            "description": "Demo card",
            "logo_text": None,
            "background_color": "rgb(1, 2, 3)",
            "foreground_color": "rgb(255, 255, 255)",
            "label_color": "rgb(200, 210, 230)",
        },
        google={"issuer_id": None, "class_suffix": None},
        design_version=3,
        created_at=NOW,
        updated_at=NOW,
    )
    program = program_from_row(old)
    assert program.tiers == (Tier("Bronze", 0), Tier("Gold", 100))
    assert program.apple == replace(
        AppleDesign("pass.com.example.demo", "DEVTEAM123", "Demo", "Demo card"),
        background_color="rgb(1, 2, 3)",
    )
