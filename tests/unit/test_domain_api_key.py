"""API keys: what a caller may do, and on which program."""

from __future__ import annotations

import pytest

from walletsvc.domain.api_key import Principal, Scope, check_grant, parse_scopes
from walletsvc.domain.errors import Forbidden, InvalidInput, NotFound

ADMIN = Principal(key_id="k-admin", name="admin", scopes=frozenset({Scope.ADMIN}))
READER = Principal(
    key_id="k-read",
    name="reader",
    scopes=frozenset({Scope.PASSES_READ, Scope.CUSTOMERS_READ}),
)
COFFEE_KEY = Principal(
    key_id="k-coffee",
    name="coffee pos",
    scopes=frozenset({Scope.API_KEYS_WRITE, Scope.PASSES_READ, Scope.LOYALTY_WRITE}),
    program_id="coffee",
)


@pytest.mark.parametrize("scope", list(Scope))
def test_admin_key_holds_every_scope(scope: Scope) -> None:
    assert ADMIN.has(scope)
    ADMIN.require(scope)


def test_key_holds_exactly_the_scopes_it_was_given() -> None:
    held = {scope for scope in Scope if READER.has(scope)}
    assert held == {Scope.PASSES_READ, Scope.CUSTOMERS_READ}


@pytest.mark.parametrize(
    "scope", [Scope.PASSES_WRITE, Scope.CUSTOMERS_WRITE, Scope.ADMIN, Scope.API_KEYS_WRITE]
)
def test_key_without_a_scope_is_forbidden_from_using_it(scope: Scope) -> None:
    with pytest.raises(Forbidden) as caught:
        READER.require(scope)
    assert caught.value.reason == "missing_scope"


def test_read_scope_does_not_imply_write() -> None:
    assert READER.has(Scope.PASSES_READ)
    assert not READER.has(Scope.PASSES_WRITE)


def test_unbound_key_may_reach_every_program() -> None:
    READER.require_program("coffee")
    READER.require_program("tea")


def test_program_key_may_reach_its_own_program() -> None:
    COFFEE_KEY.require_program("coffee")


def test_program_key_sees_another_program_as_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        COFFEE_KEY.require_program("tea")
    # 404, not 403: a key must not learn which ids other programs use.
    assert not isinstance(caught.value, Forbidden)
    assert caught.value.reason == "not_found"


def test_program_bound_admin_key_still_cannot_reach_another_program() -> None:
    key = Principal(key_id="k", name="n", scopes=frozenset({Scope.ADMIN}), program_id="coffee")
    with pytest.raises(NotFound):
        key.require_program("tea")


def test_scope_names_parse_to_scopes() -> None:
    assert parse_scopes(["passes:read", "loyalty:write", "passes:read"]) == frozenset(
        {Scope.PASSES_READ, Scope.LOYALTY_WRITE}
    )


@pytest.mark.parametrize(
    "values",
    [
        ["passes:delete"],
        ["passes:read", "root"],
        ["Admin"],
        [""],
    ],
)
def test_unknown_scope_names_are_refused(values: list[str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_scopes(values)
    assert caught.value.field == "scopes"


def test_key_with_no_scopes_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_scopes([])
    assert caught.value.field == "scopes"


def test_admin_may_grant_anything_for_any_program() -> None:
    check_grant(ADMIN, frozenset(Scope), None)
    check_grant(ADMIN, frozenset(Scope), "tea")


def test_key_may_grant_scopes_it_holds_for_its_own_program() -> None:
    check_grant(COFFEE_KEY, frozenset({Scope.PASSES_READ}), "coffee")
    check_grant(COFFEE_KEY, COFFEE_KEY.scopes, "coffee")


def test_program_key_cannot_grant_for_another_program() -> None:
    with pytest.raises(Forbidden):
        check_grant(COFFEE_KEY, frozenset({Scope.PASSES_READ}), "tea")


def test_program_key_cannot_grant_an_unbound_key() -> None:
    # An unbound key reaches every program: handing one out would escape the binding.
    with pytest.raises(Forbidden):
        check_grant(COFFEE_KEY, frozenset({Scope.PASSES_READ}), None)


@pytest.mark.parametrize(
    "scopes",
    [
        frozenset({Scope.ADMIN}),
        frozenset({Scope.PASSES_WRITE}),
        frozenset({Scope.PASSES_READ, Scope.CUSTOMERS_WRITE}),
    ],
)
def test_key_cannot_grant_scopes_it_lacks(scopes: frozenset[Scope]) -> None:
    with pytest.raises(Forbidden):
        check_grant(COFFEE_KEY, scopes, "coffee")


def test_unbound_key_cannot_grant_scopes_it_lacks() -> None:
    with pytest.raises(Forbidden):
        check_grant(READER, frozenset({Scope.ADMIN}), None)
