"""The durable, coalescing push queue and the worker's reply policy (PROTOCOLS.md section 2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.conformance.test_apple_web_service import DEVICE, OTHER_DEVICE, TOKEN, Wallet
from walletsvc.bootstrap import build_container, utc_now
from walletsvc.domain.push import PushOutcome, PushReply
from walletsvc.services.pass_changes import refresh_program_passes
from walletsvc.services.push_delivery import PushPolicy, deliver_due_pushes

SECOND_TOKEN = "ef" * 32


@dataclass
class FakeApns:
    """Stands in for the APNs port: records pushes and answers as told per token."""

    answers: dict[str, PushReply] = field(default_factory=dict)
    sent: list[tuple[str, str]] = field(default_factory=list)
    during_send: Callable[[], Any] | None = None

    async def send(self, topic: str, push_tokens: Sequence[str]) -> list[PushReply]:
        if self.during_send is not None:
            await self.during_send()
        self.sent.extend((topic, token) for token in push_tokens)
        return [
            self.answers.get(token, PushReply(token, PushOutcome.DELIVERED, 200))
            for token in push_tokens
        ]

    async def close(self) -> None:
        return None


def later(container: Any, seconds: float = 5) -> Any:
    """The service context as seen `seconds` from now, when queued pushes are due."""
    return replace(container.ctx, clock=lambda: utc_now() + timedelta(seconds=seconds))


async def _installed_coupon(wallet: Wallet, devices: Sequence[tuple[str, str]]) -> dict[str, Any]:
    issued = await wallet.coupon()
    document = await wallet.pass_json(issued)
    for device, token in devices:
        assert await wallet.register(document, device=device, push_token=token) == 201
    return issued


async def _pending(container: Any) -> list[tuple[str, int, int]]:
    async with container.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT push_token, generation, attempts FROM apple_push_queue")
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def test_several_changes_before_the_push_make_one_push_per_device(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN), (OTHER_DEVICE, SECOND_TOKEN)])
    for title in ("11% off", "12% off", "13% off"):
        await wallet.change_coupon(issued["serial"], title=title)
    apns = FakeApns()
    outcomes = await deliver_due_pushes(later(container), apns)
    assert outcomes[PushOutcome.DELIVERED] == 2
    topic = "pass.com.example.walletsvc.demo"
    assert sorted(apns.sent) == sorted([(topic, TOKEN), (topic, SECOND_TOKEN)])
    assert await _pending(container) == []
    assert sum((await deliver_due_pushes(later(container), apns)).values()) == 0


async def test_a_push_waits_for_its_coalescing_window(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="20% off")
    apns = FakeApns()
    assert sum((await deliver_due_pushes(container.ctx, apns)).values()) == 0
    assert len(await _pending(container)) == 1


async def test_no_push_is_owed_when_nothing_shown_changed(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="10% off")  # the title it already has
    assert await _pending(container) == []


async def test_pending_pushes_survive_a_restart(client, admin, container, make_settings):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="25% off")
    restarted = build_container(make_settings())
    try:
        apns = FakeApns()
        await deliver_due_pushes(later(restarted), apns)
        assert [token for _, token in apns.sent] == [TOKEN]
    finally:
        await restarted.close()


async def test_a_process_dying_mid_push_leaves_it_to_another_after_the_claim_lease(
    client, admin, container, make_settings
):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="27% off")
    # Two processes configured with a 5 s claim (apple.apns.claim_lease_s), not 60.
    first = build_container(make_settings(apple={"apns": {"claim_lease_s": 5}}))
    second = build_container(make_settings(apple={"apns": {"claim_lease_s": 5}}))

    async def die() -> None:
        raise asyncio.CancelledError  # the process is killed with the push in flight

    try:
        with pytest.raises(asyncio.CancelledError):
            await deliver_due_pushes(later(first, 5), FakeApns(during_send=die))
        apns = FakeApns()
        # While the dead process's claim lasts, nobody sends the push twice...
        assert sum((await deliver_due_pushes(later(second, 9), apns)).values()) == 0
        # ...and once it ran out (5 s after the claim, not 60), the other process does.
        await deliver_due_pushes(later(second, 11), apns)
        assert [token for _, token in apns.sent] == [TOKEN]
        assert await _pending(container) == []
    finally:
        await first.close()
        await second.close()


async def test_an_unregistered_token_loses_its_registrations_and_is_not_retried(
    client, admin, container
):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="30% off")
    apns = FakeApns(
        answers={TOKEN: PushReply(TOKEN, PushOutcome.UNREGISTERED, 410, "Unregistered")}
    )
    await deliver_due_pushes(later(container), apns)
    assert await _pending(container) == []
    document = await wallet.pass_json(issued)
    assert (await wallet.changed(document))[0] == 204
    async with container.engine.connect() as connection:
        removed = (
            await connection.execute(
                text("SELECT data FROM outbox WHERE type LIKE '%pass_removed%'")
            )
        ).all()
    assert len(removed) == 1
    data = removed[0][0]
    data = json.loads(data) if isinstance(data, str) else data
    assert data["serial"] == issued["serial"] and data["cause"] == "apns_unregistered"


async def test_a_busy_apns_is_retried_later_with_back_off(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="35% off")
    busy = FakeApns(answers={TOKEN: PushReply(TOKEN, PushOutcome.RETRY, 429, "TooManyRequests")})
    await deliver_due_pushes(later(container), busy)
    assert await _pending(container) == [(TOKEN, 1, 1)]
    # Not due again a moment later: the back-off starts at five seconds.
    assert sum((await deliver_due_pushes(later(container, 6), busy)).values()) == 0
    recovered = FakeApns()
    await deliver_due_pushes(later(container, 120), recovered)
    assert [token for _, token in recovered.sent] == [TOKEN]
    assert await _pending(container) == []


async def test_retry_after_from_apns_is_honoured(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="36% off")
    busy = FakeApns(
        answers={TOKEN: PushReply(TOKEN, PushOutcome.RETRY, 429, "TooManyRequests", 600)}
    )
    await deliver_due_pushes(later(container), busy)
    assert sum((await deliver_due_pushes(later(container, 300), FakeApns())).values()) == 0
    assert sum((await deliver_due_pushes(later(container, 700), FakeApns())).values()) == 1


async def test_a_configuration_error_is_parked_not_hammered(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="40% off")
    wrong = FakeApns(
        answers={TOKEN: PushReply(TOKEN, PushOutcome.MISCONFIGURED, 403, "BadCertificate")}
    )
    await deliver_due_pushes(later(container), wrong)
    assert sum((await deliver_due_pushes(later(container, 300), wrong)).values()) == 0
    assert len(wrong.sent) == 1
    async with container.engine.connect() as connection:
        error = (await connection.execute(text("SELECT last_error FROM apple_push_queue"))).scalar()
    assert error == "403 BadCertificate"


async def test_a_change_that_lands_while_pushing_is_pushed_again(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.change_coupon(issued["serial"], title="45% off")

    async def change_meanwhile() -> None:
        apns.during_send = None
        await wallet.change_coupon(issued["serial"], title="50% off")

    apns = FakeApns(during_send=change_meanwhile)
    await deliver_due_pushes(later(container), apns)
    assert len(await _pending(container)) == 1
    await deliver_due_pushes(later(container), apns)
    assert [token for _, token in apns.sent] == [TOKEN, TOKEN]
    assert await _pending(container) == []


@pytest.mark.postgres
async def test_concurrent_workers_never_claim_the_same_push(client, admin, container):
    wallet = Wallet(client, admin)
    devices = [(f"{n:032x}", f"{n:064x}") for n in range(1, 41)]
    await _installed_coupon(wallet, devices)
    issued_serial = (await wallet.coupon("c-other"))["serial"]
    assert issued_serial
    async with container.engine.connect() as connection:
        serial = (
            await connection.execute(text("SELECT serial FROM apple_registrations LIMIT 1"))
        ).scalar()
    await wallet.change_coupon(serial, title="60% off")
    policy = PushPolicy(batch=10)
    workers = [FakeApns() for _ in range(4)]
    await asyncio.gather(*(deliver_due_pushes(later(container), w, policy) for w in workers))
    while await _pending(container):
        await asyncio.gather(*(deliver_due_pushes(later(container), w, policy) for w in workers))
    sent = [token for worker in workers for _, token in worker.sent]
    assert sorted(sent) == sorted(token for _, token in devices)


async def test_a_design_change_updates_every_pass_of_the_program_once(client, admin, container):
    wallet = Wallet(client, admin)
    issued = await _installed_coupon(wallet, [(DEVICE, TOKEN)])
    await wallet.coupon("c-2")
    ctx = container.ctx
    async with ctx.uow() as uow:
        program = await uow.programs.get("demo")
        assert program is not None
        await uow.programs.update(
            program.with_design(replace(program.apple, background_color="rgb(200, 0, 0)"))
        )
        await uow.commit()
    assert await refresh_program_passes(ctx, "demo", batch=1) == 2
    assert await refresh_program_passes(ctx, "demo", batch=1) == 0
    assert [token for token, _, _ in await _pending(container)] == [TOKEN]
    document = await wallet.pass_json(issued)
    assert document["backgroundColor"] == "rgb(200, 0, 0)"
