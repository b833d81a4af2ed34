"""Domain errors: one tree, each with a machine-readable reason."""

from __future__ import annotations

import pytest

from walletsvc.domain import errors
from walletsvc.domain.errors import (
    Conflict,
    DomainError,
    DuplicateKey,
    InvalidInput,
    NotFound,
)

ERROR_CLASSES = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, DomainError) and value is not DomainError
]


def test_every_error_kind_has_its_own_reason() -> None:
    reasons = [cls.reason for cls in ERROR_CLASSES]
    assert len(set(reasons)) == len(reasons)
    assert "error" not in reasons


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_error_carries_its_detail_and_field(cls: type[DomainError]) -> None:
    error = cls("something is off", field="name")
    assert error.detail == "something is off"
    assert str(error) == "something is off"
    assert error.field == "name"
    assert error.reason == cls.reason


def test_reason_given_to_one_error_does_not_change_its_kind() -> None:
    specific = NotFound("gone", reason="link_invalid")
    assert specific.reason == "link_invalid"
    assert NotFound("gone").reason == "not_found"
    assert NotFound.reason == "not_found"


def test_error_without_a_field_has_none() -> None:
    assert InvalidInput("bad").field is None


def test_duplicate_key_is_a_conflict() -> None:
    assert isinstance(DuplicateKey("taken"), Conflict)
    assert DuplicateKey("taken").reason == "already_exists"
