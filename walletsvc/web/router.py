"""Typed routes: one declaration installs the aiohttp handler and describes it in OpenAPI.

Request bodies are parsed from raw bytes and validated by the route's pydantic `In`
model (unknown fields refused); the OpenAPI document is generated from the same
models, so the description cannot drift from the code.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from walletsvc.domain.errors import DomainError
from walletsvc.web.auth import principal_of
from walletsvc.web.limits import admit
from walletsvc.web.middleware import request_id_of
from walletsvc.web.problem import PROBLEM_MEDIA_TYPE, problem
from walletsvc.web.refusals import API_AUTH, count_refusal

ModelT = TypeVar("ModelT", bound=BaseModel)
Endpoint = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    """One documented HTTP operation."""

    method: str
    path: str
    endpoint: Endpoint
    summary: str
    tag: str
    body: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | str | None]
    auth: bool
    query: dict[str, str] = field(default_factory=dict)
    # False: the body is only described; the endpoint reads it itself (after its own auth).
    parse_body: bool = True
    # Where refusals are counted (walletsvc_refusals_total{surface}); None: not counted.
    surface: str | None = None


class ApiRouter:
    """Collects operations; installs them into an app and renders the OpenAPI document."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        responses: dict[int, type[BaseModel] | str | None],
        body: type[BaseModel] | None = None,
        auth: bool = True,
        query: dict[str, str] | None = None,
        parse_body: bool = True,
        surface: str | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        """Declare an operation; the endpoint gets `request`, and `principal` and `body` if any."""

        def register(endpoint: Endpoint) -> Endpoint:
            self.operations.append(
                Operation(
                    method,
                    path,
                    endpoint,
                    summary,
                    tag,
                    body,
                    responses,
                    auth,
                    query or {},
                    parse_body,
                    surface or (API_AUTH if auth else None),
                )
            )
            return endpoint

        return register

    def install(self, app: web.Application) -> None:
        """Add every operation's handler to `app`."""
        for operation in self.operations:
            app.router.add_route(operation.method, operation.path, _handler(operation))


def _handler(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        arguments: dict[str, Any] = {}
        try:
            # Who is calling is settled before the body is read: an unauthenticated
            # caller learns nothing about what a valid body would look like.
            if operation.auth:
                principal = arguments["principal"] = await principal_of(request)
                # Counted once the key is known good: a forged key spends no one's allowance.
                await admit(request, "api_key", principal.key_id)
            if operation.body is not None and operation.parse_body:
                parsed = await parse_body(request, operation.body)
                if isinstance(parsed, web.Response):
                    return parsed
                arguments["body"] = parsed
            return await operation.endpoint(request, **arguments)
        except DomainError as error:
            # The one place refusals are counted; the middleware still writes the answer.
            count_refusal(operation.surface, error)
            raise

    return handle


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT | web.Response:
    """Return the validated body, or the problem response that explains what is wrong."""
    request_id = request_id_of(request)
    if request.content_type not in ("application/json", ""):
        return problem(
            415,
            "send the body as application/json",
            reason="unsupported_media_type",
            request_id=request_id,
        )
    raw = await request.read()
    try:
        data = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problem(
            400,
            f"the body is not valid JSON: {exc}",
            reason="malformed_json",
            request_id=request_id,
        )
    if not isinstance(data, dict):
        return problem(
            400, "the body must be a JSON object", reason="malformed_json", request_id=request_id
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        return problem(
            422,
            f"{first['field'] or 'body'}: {first['message']}",
            reason="validation_failed",
            request_id=request_id,
            field=first["field"] or None,
            errors=errors,
        )


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """Return a model as JSON (by alias, so Apple/Google spellings survive)."""
    return web.Response(
        status=status,
        text=model.model_dump_json(by_alias=True),
        content_type="application/json",
    )


def openapi_document(
    router: ApiRouter, *, title: str, version: str, server_url: str
) -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of every operation on `router`."""
    schemas: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}

    def ref(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, str]:
        schema = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}", mode=mode
        )
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for operation in router.operations:
        item: dict[str, Any] = {
            "summary": operation.summary,
            "tags": [operation.tag],
            # One endpoint may serve GET and HEAD; operation ids must still be unique.
            "operationId": operation.endpoint.__name__
            + ("_head" if operation.method == "HEAD" else ""),
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_parameters(operation.path)
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": description,
            }
            for name, description in operation.query.items()
        ]
        if parameters:
            item["parameters"] = parameters
        if operation.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(operation.body, "validation")}},
            }
        pages = any(response == HTML for response in operation.responses.values())
        for status, response in operation.responses.items():
            entry: dict[str, Any] = {"description": TITLES_OK.get(status, "response")}
            if isinstance(response, type):
                entry["content"] = {"application/json": {"schema": ref(response, "serialization")}}
            elif isinstance(response, str):
                entry["content"] = {response: {"schema": {"type": "string", "format": "binary"}}}
            elif status >= 400:
                entry = _problem_response(pages)
            item["responses"][str(status)] = entry
        for status in _error_statuses(operation):
            item["responses"].setdefault(str(status), _problem_response(pages))
        if operation.auth:
            item["security"] = [{"bearer": []}]
        paths.setdefault(operation.path, {})[operation.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _error_statuses(operation: Operation) -> list[int]:
    """Return the problem statuses any operation of this kind can answer.

    Every operation may meet a bad path or query value (400, 404, 422), a rate limit
    (429), a dependency down (503) or a bug (500); key routes add 401 and 403; routes
    with a body add the body's refusals; writes may clash with the current state (409).
    What an operation refuses beyond that, it declares in its own `responses`.
    """
    statuses = {400, 404, 422, 429, 500, 503}
    if operation.auth:
        statuses |= {401, 403}
    if operation.body is not None:
        statuses |= {408, 413, 415}
    if operation.method in ("POST", "PUT", "PATCH", "DELETE"):
        statuses.add(409)
    return sorted(statuses)


def _problem_response(pages: bool) -> dict[str, Any]:
    """Return the OpenAPI response of a problem; pages for people may answer HTML too."""
    content: dict[str, Any] = {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    if pages:
        content[HTML] = {"schema": {"type": "string"}}
    return {"description": "problem", "content": content}


HTML = "text/html"


TITLES_OK = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 304: "Not Modified"}

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "reason"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "reason": {"type": "string", "description": "stable machine-readable cause"},
        "field": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
