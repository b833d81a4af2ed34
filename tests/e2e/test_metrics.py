"""`GET /metrics`: what an operator's Prometheus scrapes, and who may."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.test_apple_web_service import Wallet
from tests.e2e.test_access import make_key
from tests.e2e.test_scans import _barcode, _till
from tests.helpers import issue_loyalty


async def _scrape(client: Any, headers: dict[str, str]) -> dict[tuple[str, tuple[Any, ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_show_passes_tiers_requests_and_signatures(client, admin):
    before = await _scrape(client, admin)
    till = await _till(client, admin)
    barcode = await _barcode(client, admin, "crm-1")  # issues and downloads (signs) a pass
    assert (await till.scan(barcode, "purchase", amount="600.00"))[0] == 200
    after = await _scrape(client, admin)
    assert _value(after, "walletsvc_passes", program="demo", kind="loyalty", state="active") == 1
    assert _value(after, "walletsvc_customers", program="demo", tier="Silver") == 1
    signed = "walletsvc_passes_signed_total"
    assert _value(after, signed) >= _value(before, signed) + 1
    scans = dict(method="POST", route="/api/v1/scans", status="200")
    assert _value(after, "walletsvc_http_requests_total", **scans) == (
        _value(before, "walletsvc_http_requests_total", **scans) + 1
    )
    # Pushes owed to no device yet, and no events configured: the gauges are there, at 0.
    assert ("walletsvc_apns_push_queue", ()) in after


async def test_labels_carry_route_templates_never_tokens(client, admin):
    issued = await issue_loyalty(client, admin, "crm-2")
    document = await Wallet(client, admin).pass_json(issued)
    token = issued["add_url"].rsplit("/", 1)[-1]
    text = await (await client.get("/metrics", headers=admin)).text()
    assert token not in text and document["authenticationToken"] not in text
    assert 'route="/add/{token}/pass.pkpass"' in text or 'route="/api/v1/passes"' in text


async def test_metrics_need_the_scope_and_a_key_of_every_program(client, admin):
    assert (await client.get("/metrics")).status == 401
    reader = await make_key(client, admin, ["passes:read"])
    assert (await client.get("/metrics", headers=reader)).status == 403
    scraper = await make_key(client, admin, ["metrics:read"])
    assert (await client.get("/metrics", headers=scraper)).status == 200
    bound = await make_key(client, admin, ["metrics:read"], program="demo")
    assert (await client.get("/metrics", headers=bound)).status == 403
