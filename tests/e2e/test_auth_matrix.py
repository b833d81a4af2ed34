"""Every route x every kind of caller, from one table: add a route, add its row.

For the server-to-server API each route is called with no credentials, a wrong key, a
key that lacks the route's scope, and a key of another program holding every scope.
Routes that authenticate otherwise (Apple's tokens, signatures, link tokens) are called
without what they need. Each answer must be the documented status as problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.test_access import make_key
from tests.e2e.test_scans import _till
from tests.helpers import issue_loyalty
from walletsvc.domain.api_key import Scope
from walletsvc.web.api import router

PROBLEM = "application/problem+json"
# Every scope there is but admin: a key that may do anything a program key can.
ALL_SCOPES = [scope.value for scope in Scope if scope is not Scope.ADMIN]


@dataclass(frozen=True)
class Api:
    """A /api/v1 route: the scope it needs, and what another program's key gets."""

    scope: str
    body: dict[str, Any] | None = None
    # 404: the resource is hidden; 403: the route is not for program keys; 200: a list,
    # answered but without the other program's items.
    other_program: int = 404


@dataclass(frozen=True)
class Other:
    """A route authenticated by something other than an API key."""

    status: int  # the answer without what it needs
    body: dict[str, Any] | None = field(default=None)
    page: bool = False  # a page for people: its errors are HTML pages, not problem+json


CUSTOMER = "{customer}"
SERIAL = "{serial}"
APPLE_REGISTRATION = (
    "/apple/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}"
)

MATRIX: dict[tuple[str, str], Api | Other] = {
    ("POST", "/api/v1/api-keys"): Api(
        "api-keys:write",
        {"name": "k", "scopes": ["passes:read"], "program": "demo"},
        other_program=403,  # a program key makes keys of its own program only, whichever
    ),
    ("GET", "/api/v1/api-keys"): Api("api-keys:write", other_program=200),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Api("api-keys:write"),
    ("GET", "/api/v1/programs"): Api("programs:read", other_program=200),
    ("POST", "/api/v1/programs"): Api(
        "programs:write",
        {"id": "p2", "name": "P2", "tiers": [{"name": "A", "min_points": 0}]},
        other_program=403,
    ),
    ("PUT", "/api/v1/programs/{program_id}"): Api(
        "programs:write", {"id": "demo", "name": "D", "tiers": [{"name": "A", "min_points": 0}]}
    ),
    ("POST", "/api/v1/stores"): Api(
        "stores:write",
        {"id": "s2", "program": "demo", "name": "S", "latitude": 1, "longitude": 1, "radius_m": 50},
    ),
    ("POST", "/api/v1/stores/{store_id}/terminals"): Api(
        "stores:write", {"id": "t2", "adapter": "walletsvc"}
    ),
    ("POST", "/api/v1/stores/{store_id}/terminals/{terminal_id}/secret"): Api("stores:write", {}),
    ("POST", "/api/v1/customers"): Api(
        "customers:write", {"external_id": "crm-9", "program": "demo"}
    ),
    ("GET", "/api/v1/customers/{customer_id}"): Api("customers:read"),
    ("DELETE", "/api/v1/customers/{customer_id}"): Api("customers:write"),
    ("POST", "/api/v1/customers/{customer_id}/identifiers"): Api(
        "customers:write", {"kind": "pos_customer", "value": "square:C-1"}
    ),
    ("PUT", "/api/v1/customers/{customer_id}/loyalty"): Api("loyalty:write", {"points": 5}),
    ("POST", "/api/v1/customers/{customer_id}/ledger-entries"): Api(
        "loyalty:write", {"kind": "earn", "points": 5, "business_key": "k-1"}
    ),
    ("GET", "/api/v1/tier-updates"): Api("loyalty:read", other_program=200),
    ("POST", "/api/v1/passes"): Api(
        "passes:write", {"program": "demo", "kind": "loyalty", "customer_id": CUSTOMER}
    ),
    ("GET", "/api/v1/passes/{serial}"): Api("passes:read"),
    ("PATCH", "/api/v1/passes/{serial}"): Api("passes:write", {"coupon": {"title": "x"}}),
    ("POST", "/api/v1/passes/{serial}/void"): Api("passes:write", {"reason": "test"}),
    ("GET", "/api/v1/passes/{serial}/pass.pkpass"): Api("passes:read"),
    ("POST", "/api/v1/geofence-events"): Api(
        "geofence:write",
        {
            "event_id": "g-1",
            "store_id": "berlin",
            "customer_id": CUSTOMER,
            "type": "enter",
            "latitude": 52.52,
            "longitude": 13.405,
            "accuracy_m": 10,
            "occurred_at": "2026-11-22T10:00:00Z",
        },
    ),
    ("GET", "/metrics"): Api("metrics:read", other_program=403),
    # Apple Wallet's web service: the pass's authentication token, or 401.
    ("POST", APPLE_REGISTRATION): Other(401, {"pushToken": "t"}),
    ("DELETE", APPLE_REGISTRATION): Other(401),
    ("GET", "/apple/v1/passes/{passTypeIdentifier}/{serialNumber}"): Other(401),
    ("HEAD", "/apple/v1/passes/{passTypeIdentifier}/{serialNumber}"): Other(401),
    # Which serials changed on a device is no secret of any one pass (Apple sends no token).
    ("GET", "/apple/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}"): (
        Other(204)
    ),
    ("POST", "/apple/v1/log"): Other(200, {"logs": ["x"]}),
    # Signed by the sender: refused without a valid signature.
    ("POST", "/api/v1/scans"): Other(401, {"scan_id": "s"}),
    ("POST", "/webhooks/pos/{adapter}/{terminal_id}"): Other(401, {"id": "x"}),
    ("POST", "/webhooks/geofence/radar"): Other(404, {}),  # no Radar token configured
    # Google's save/delete callbacks carry Google's signature (ECv2SigningOnly; the forged
    # ones are tests/e2e/test_google_callbacks.py). These settings configure no root keys.
    ("POST", "/google/callback"): Other(404, {"signature": "x", "intermediateSigningKey": {}}),
    # The logo Google fetches for a program's class: public, like any image on a website;
    # demo has no Google issuer, so it has none.
    ("GET", "/google/programs/{program_id}/logo.png"): Other(404),
    # Signed links: a wrong token is refused.
    ("GET", "/add/{token}"): Other(404, page=True),
    ("GET", "/add/{token}/pass.pkpass"): Other(404),
    # The operator dashboard: a page for people; without a session the browser is sent to
    # sign in, and a sign-in without a key shows the form again (tests/e2e/test_dashboard.py).
    ("GET", "/dashboard"): Other(303, page=True),
    ("GET", "/dashboard/login"): Other(200, page=True),
    ("POST", "/dashboard/login"): Other(401, {}, page=True),
    ("POST", "/dashboard/logout"): Other(200, page=True),
    # Open by design.
    ("GET", "/healthz"): Other(200),
    ("GET", "/readyz"): Other(200),
    ("GET", "/api/v1/openapi.json"): Other(200),
}


def test_every_route_has_a_row_and_every_row_a_route():
    routes = {(op.method, op.path) for op in router.operations}
    assert routes - MATRIX.keys() == set(), "add these routes to the auth matrix"
    assert MATRIX.keys() - routes == set(), "these rows name routes that are gone"


def test_api_rows_are_exactly_the_key_authenticated_routes():
    for op in router.operations:
        assert isinstance(MATRIX[(op.method, op.path)], Api) == op.auth, (op.method, op.path)


@pytest.fixture
async def world(client, admin):
    """A demo customer with a pass at a store with a terminal, and another program's key."""
    await _till(client, admin)
    issued = await issue_loyalty(client, admin, "crm-1")
    info = await (await client.get(f"/api/v1/passes/{issued['serial']}", headers=admin)).json()
    await client.post(
        "/api/v1/programs",
        json={"id": "other", "name": "Other", "tiers": [{"name": "A", "min_points": 0}]},
        headers=admin,
    )
    return {
        "customer": info["customer_id"],
        "serial": issued["serial"],
        "outsider": await make_key(client, admin, ALL_SCOPES, program="other"),
    }


def _url(path: str, world: dict[str, Any]) -> str:
    return (
        path.replace("{customer_id}", world["customer"])
        .replace("{serial}", world["serial"])
        .replace("{serialNumber}", world["serial"])
        .replace("{store_id}", "berlin")
        .replace("{program_id}", "demo")
        .replace("{terminal_id}", "till-1")
        .replace("{key_id}", "0123456789abcdef")
        .replace("{adapter}", "shopify")
        .replace("{token}", "not-a-token")
        .replace("{deviceLibraryIdentifier}", "dev-1")
        .replace("{passTypeIdentifier}", "pass.com.example")
    )


def _body(body: dict[str, Any] | None, world: dict[str, Any]) -> dict[str, Any] | None:
    if body is None:
        return None
    return {k: world["customer"] if v == CUSTOMER else v for k, v in body.items()}


async def _call(client, method, url, body, headers=None):
    # Redirects are answers too: a page sends a browser without a session to sign in.
    return await client.request(
        method, url, json=body, headers=headers or {}, allow_redirects=False
    )


async def _problem(response, status):
    assert response.status == status, (response.method, response.url, await response.text())
    if status >= 400 and response.method != "HEAD":
        assert response.content_type == PROBLEM


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
async def test_each_route_refuses_whoever_may_not_call_it(client, admin, world, method, path):
    row = MATRIX[(method, path)]
    url = _url(path, world)
    body = _body(row.body, world)
    if isinstance(row, Other):
        response = await _call(client, method, url, body)
        if row.page:
            assert (response.status, response.content_type) == (row.status, "text/html")
        else:
            await _problem(response, row.status)
        return
    await _problem(await _call(client, method, url, body), 401)
    wrong = {"Authorization": "Bearer wsk_not_a_key"}
    await _problem(await _call(client, method, url, body, wrong), 401)
    lacking = await make_key(client, admin, [s for s in ALL_SCOPES if s != row.scope])
    await _problem(await _call(client, method, url, body, lacking), 403)
    response = await _call(client, method, url, body, world["outsider"])
    if row.other_program == 200:
        assert response.status == 200
        items = (await response.json())["items"]
        # Answered, but with nothing of demo's.
        assert all(item.get("id", item.get("program")) != "demo" for item in items), items
    else:
        await _problem(response, row.other_program)
