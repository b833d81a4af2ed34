"""POST /google/callback: verified callbacks count installs once; every bad one is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from tests.conftest import EXTERNAL_DATABASE, empty_all_tables
from tests.e2e.google_setup import ISSUER, PROGRAM, create_program, service_account_for
from tests.fakes.google import FakeGoogleServer
from tests.fakes.google_callbacks import CallbackSigner, now_ms
from walletsvc.bootstrap import build_container, prepare_database
from walletsvc.web.app import create_app


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner()


@pytest.fixture
async def stack(
    signer: CallbackSigner,
    make_settings: Callable[..., Any],
    tmp_path: Path,
    aiohttp_client: Any,
    admin: dict[str, str],
) -> AsyncIterator[tuple[Any, Any, str, Path]]:
    roots = signer.write_root_keys(tmp_path / "google-root-keys.json")
    async with FakeGoogleServer(public_key_pem=b"") as google:
        account = service_account_for(google, tmp_path)
        settings = make_settings(
            google={
                "service_account_file": account,
                "issuer_id": ISSUER,
                "api_base_url": google.api_url,
                "root_keys_file": roots,
            }
        )
        container = build_container(settings)
        await prepare_database(container)
        try:
            client = await aiohttp_client(create_app(container))
            await create_program(client, admin)
            response = await client.post(
                "/api/v1/passes",
                json={"program": PROGRAM, "kind": "loyalty", "customer_external_id": "crm-9"},
                headers=admin,
            )
            serial = (await response.json())["serial"]
            yield client, container, serial, roots
        finally:
            if EXTERNAL_DATABASE is not None:
                await empty_all_tables(container)
            await container.close()


def _ids(serial: str) -> dict[str, str]:
    return {"object_id": f"{ISSUER}.{serial}", "class_id": f"{ISSUER}.{PROGRAM}"}


async def _post(client: Any, envelope: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    response = await client.post(
        "/google/callback", data=body, headers={"Content-Type": "application/json"}
    )
    if response.status >= 400:
        assert response.content_type == "application/problem+json"
    return response.status, await response.json()


async def _installs(client: Any, admin: dict[str, str], serial: str) -> int:
    response = await client.get(f"/api/v1/passes/{serial}", headers=admin)
    return int((await response.json())["installs"]["google"])


async def _events(container: Any, serial: str) -> list[tuple[str, dict[str, Any]]]:
    async with container.engine.connect() as connection:
        rows = await connection.execute(text("SELECT type, data FROM outbox ORDER BY seq"))
        found = []
        for event_type, data in rows:
            data = json.loads(data) if isinstance(data, str) else data
            if data.get("serial") == serial and data.get("platform") == "google":
                found.append((event_type, data))
        return found


async def _rejections(container: Any, reason: str) -> int:
    async with container.ctx.uow() as uow:
        return await uow.callback_rejections.total("google:callback", reason)


async def test_a_save_then_a_delete_count_installs_and_emit_events(stack, signer, admin):
    client, container, serial, _ = stack
    status, body = await _post(client, signer.envelope(recipient=ISSUER, **_ids(serial)))
    assert (status, body) == (200, {"serial": serial, "event": "save", "installs": 1})
    assert await _installs(client, admin, serial) == 1
    deleted = signer.envelope(recipient=ISSUER, event="del", nonce="nonce-2", **_ids(serial))
    assert (await _post(client, deleted))[0] == 200
    assert await _installs(client, admin, serial) == 0
    events = await _events(container, serial)
    assert [event_type.rsplit(".", 2)[-2] for event_type, _ in events] == [
        "pass_installed",
        "pass_removed",
    ]
    customer = events[0][1]["customer_id"]
    assert events[0][1] == {
        "customer_id": customer,
        "program": PROGRAM,
        "serial": serial,
        "platform": "google",
    }


async def test_a_redelivered_callback_is_answered_as_before_and_applied_once(stack, signer, admin):
    client, container, serial, _ = stack
    envelope = signer.envelope(recipient=ISSUER, **_ids(serial))
    first = await _post(client, envelope)
    assert first == (200, {"serial": serial, "event": "save", "installs": 1})
    assert await _post(client, envelope) == first
    assert await _installs(client, admin, serial) == 1
    assert len(await _events(container, serial)) == 1
    assert await _rejections(container, "callback_replayed") == 0


async def test_another_message_under_a_used_nonce_is_refused_and_counted(stack, signer, admin):
    client, container, serial, _ = stack
    saved = signer.envelope(recipient=ISSUER, nonce="nonce-9", **_ids(serial))
    assert (await _post(client, saved))[0] == 200
    deleted = signer.envelope(recipient=ISSUER, event="del", nonce="nonce-9", **_ids(serial))
    status, problem = await _post(client, deleted)
    assert (status, problem["reason"]) == (409, "callback_replayed")
    assert await _installs(client, admin, serial) == 1
    assert await _rejections(container, "callback_replayed") == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("tampered_message", "message_signature"),
        ("wrong_recipient", "message_signature"),
        ("foreign_root", "intermediate_signature"),
        ("tampered_key", "intermediate_signature"),
        ("expired_message", "message_expired"),
        ("expired_key", "intermediate_expired"),
        ("old_protocol", "protocol_version"),
    ],
)
async def test_a_forged_expired_or_misaddressed_callback_changes_nothing(
    stack, signer, admin, change, reason
):
    client, container, serial, _ = stack
    ids = _ids(serial)
    if change == "wrong_recipient":
        envelope = signer.envelope(recipient="3388000000099999999", **ids)
    elif change == "foreign_root":
        envelope = signer.envelope(
            recipient=ISSUER, root=ec.generate_private_key(ec.SECP256R1()), **ids
        )
    elif change == "expired_message":
        envelope = signer.envelope(recipient=ISSUER, message_expires_ms=now_ms() - 1000, **ids)
    elif change == "expired_key":
        envelope = signer.envelope(recipient=ISSUER, key_expires_ms=now_ms() - 1000, **ids)
    else:
        envelope = signer.envelope(recipient=ISSUER, **ids)
    if change == "tampered_message":
        envelope["signedMessage"] = envelope["signedMessage"].replace('"save"', '"del"')
    elif change == "tampered_key":
        key = json.loads(envelope["intermediateSigningKey"]["signedKey"])
        key["keyExpiration"] = str(int(key["keyExpiration"]) + 1)
        envelope["intermediateSigningKey"]["signedKey"] = json.dumps(key)
    elif change == "old_protocol":
        envelope["protocolVersion"] = "ECv1"
    status, problem = await _post(client, envelope)
    assert (status, problem["reason"]) == (401, reason)
    assert "Traceback" not in json.dumps(problem)
    assert await _installs(client, admin, serial) == 0
    assert await _events(container, serial) == []
    assert await _rejections(container, reason) == 1


async def test_a_callback_for_another_issuers_object_or_unknown_pass_is_refused(
    stack, signer, admin
):
    client, container, serial, _ = stack
    other = signer.envelope(
        recipient=ISSUER, object_id=f"1111.{serial}", class_id=f"1111.{PROGRAM}"
    )
    assert (await _post(client, other))[1]["reason"] == "unknown_object"
    unknown = signer.envelope(
        recipient=ISSUER, object_id=f"{ISSUER}.nosuchpass", class_id=f"{ISSUER}.{PROGRAM}"
    )
    status, problem = await _post(client, unknown)
    assert (status, problem["reason"]) == (404, "unknown_object")
    assert await _rejections(container, "unknown_object") == 2


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"protocolVersion": "ECv2SigningOnly"}', b""]
)
async def test_malformed_callbacks_are_problems_not_errors(stack, body):
    client, container, _, _ = stack
    status, problem = await _post(client, body)
    assert (status, problem["reason"]) == (422, "malformed_webhook")
    assert await _rejections(container, "malformed_webhook") == 1


async def test_new_root_keys_are_picked_up_without_a_restart(stack, admin):
    client, _, serial, roots = stack
    rotated = CallbackSigner()
    envelope = rotated.envelope(recipient=ISSUER, **_ids(serial))
    assert (await _post(client, envelope))[0] == 401
    replacement = rotated.write_root_keys(roots.with_suffix(".new"))
    replacement.replace(roots)
    assert (await _post(client, envelope))[0] == 200
    assert await _installs(client, admin, serial) == 1


async def test_callbacks_answer_404_until_root_keys_are_configured(client, signer):
    status, problem = await _post(
        client, signer.envelope(recipient=ISSUER, object_id="a.b", class_id="a.c")
    )
    assert (status, problem["reason"]) == (404, "callbacks_not_configured")
