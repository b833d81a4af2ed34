"""The OpenAPI document describes every route the app serves, from the code's own models."""

from __future__ import annotations

import json
import re


async def test_openapi_lists_every_served_route(client):
    document = await (await client.get("/api/v1/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route.method, route.resource.canonical)
        for route in client.server.app.router.routes()
        if route.method != "*" and route.resource is not None
    }
    assert served == documented


async def test_openapi_request_schemas_match_the_validation(client):
    document = await (await client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    customer_in = schemas["CustomerIn"]
    assert customer_in["additionalProperties"] is False  # unknown fields are refused
    assert customer_in["required"] == ["external_id"]
    issue = document["paths"]["/api/v1/passes"]["post"]
    assert issue["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PassIn"
    }
    assert set(issue["responses"]) >= {"201", "401", "403", "422"}
    assert issue["security"] == [{"bearer": []}]
    references = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document))
    assert len(references) > 20
    assert set(references) <= set(schemas)
