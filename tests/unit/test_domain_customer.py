"""Customers: external ids that callers use as keys."""

from __future__ import annotations

import pytest

from walletsvc.domain.customer import Consents, validate_external_id
from walletsvc.domain.errors import InvalidInput


@pytest.mark.parametrize("external_id", ["1", "crm:123", "anna@shop", "a.b_c-d", "x" * 128])
def test_usable_external_id_is_returned_unchanged(external_id: str) -> None:
    assert validate_external_id(external_id) == external_id


@pytest.mark.parametrize("external_id", ["", "x" * 129, "a b", "a/b", "a#b", "ä"])
def test_unusable_external_id_is_refused(external_id: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_external_id(external_id)
    assert caught.value.field == "external_id"


def test_external_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_external_id("crm-123\n")


def test_new_customer_has_consented_to_nothing() -> None:
    assert Consents() == Consents(location=False, marketing=False)
