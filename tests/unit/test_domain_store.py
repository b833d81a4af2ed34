"""Stores, their geofence, and POS terminal ids."""

from __future__ import annotations

from dataclasses import replace

import pytest

from walletsvc.domain.errors import InvalidInput
from walletsvc.domain.store import Store, validate_store, validate_terminal_id

STORE = Store(
    id="berlin-mitte_1.a",
    program_id="coffee",
    name="Berlin Mitte",
    latitude=52.52,
    longitude=13.405,
    radius_m=100.0,
)


def test_sound_store_is_accepted() -> None:
    validate_store(STORE)


@pytest.mark.parametrize(
    "change",
    [
        {"latitude": -90.0},
        {"latitude": 90.0},
        {"longitude": -180.0},
        {"longitude": 180.0},
        {"radius_m": 20.0},
        {"radius_m": 5_000.0},
        {"id": "s"},
        {"id": "s" * 64},
    ],
)
def test_values_on_the_edges_of_their_range_are_accepted(change: dict[str, object]) -> None:
    validate_store(replace(STORE, **change))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "s" * 65}, "id"),
        ({"id": "berlin mitte"}, "id"),
        ({"id": "berlin/mitte"}, "id"),
        ({"id": "berlin?mitte"}, "id"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"latitude": -90.0001}, "latitude"),
        ({"latitude": 90.0001}, "latitude"),
        ({"latitude": float("nan")}, "latitude"),
        ({"longitude": -180.0001}, "longitude"),
        ({"longitude": 180.0001}, "longitude"),
        ({"longitude": float("inf")}, "longitude"),
        ({"radius_m": 19.99}, "radius_m"),
        ({"radius_m": 5_000.01}, "radius_m"),
        ({"radius_m": 0.0}, "radius_m"),
        ({"radius_m": -100.0}, "radius_m"),
        ({"radius_m": float("nan")}, "radius_m"),
    ],
)
def test_unusable_store_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_store(replace(STORE, **change))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_store_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_store(replace(STORE, id="berlin\n"))


@pytest.mark.parametrize("terminal_id", ["t", "till-1", "TILL_2.a", "t" * 64])
def test_usable_terminal_id_is_returned_unchanged(terminal_id: str) -> None:
    assert validate_terminal_id(terminal_id) == terminal_id


@pytest.mark.parametrize(
    "terminal_id", ["", "t" * 65, "till 1", "till/1", "till:1", "till\r\nX-Evil: 1", "tíll"]
)
def test_terminal_id_unusable_in_a_url_or_header_is_refused(terminal_id: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_terminal_id(terminal_id)
    assert caught.value.field == "id"


def test_terminal_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_terminal_id("till-1\n")
