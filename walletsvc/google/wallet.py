"""GoogleWalletObjects: the WalletObjectStore port on the walletobjects REST API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from walletsvc.domain.errors import WalletUnavailable
from walletsvc.domain.google_wallet import class_id, object_id
from walletsvc.domain.pass_content import PassContent
from walletsvc.domain.program import Program
from walletsvc.domain.wallet_pass import PassKind, WalletPass
from walletsvc.google import objects
from walletsvc.google.http_session import LazySession
from walletsvc.google.rest import WalletObjectsClient
from walletsvc.google.service_account import ServiceAccount, save_url
from walletsvc.services.ports import GoogleResource


class GoogleWalletObjects:
    """Renders, writes and links Google Wallet classes and objects for one service account."""

    def __init__(
        self,
        account: ServiceAccount,
        client: WalletObjectsClient,
        session: LazySession,
        *,
        public_url: str,
        issuer_id: str | None,
    ) -> None:
        self._account = account
        self._client = client
        self._session = session
        self._public_url = public_url
        self._issuer_id = issuer_id

    @property
    def issuer_id(self) -> str | None:
        return self._issuer_id

    def save_url(self, program: Program, wallet_pass: WalletPass) -> str | None:
        """Return the pass's save link, None when its program has no Google issuer."""
        klass = class_id(program, wallet_pass.kind)
        identifier = object_id(program, wallet_pass.serial)
        if klass is None or identifier is None:
            return None
        key = "loyaltyObjects" if wallet_pass.kind is PassKind.LOYALTY else "offerObjects"
        return save_url(self._account, key, identifier, klass, [self._public_url])

    def render_class(self, program: Program, kind: PassKind) -> GoogleResource:
        logo = f"{self._public_url}/google/programs/{program.id}/logo.png"
        return objects.render_class(program, kind, public_url=self._public_url, logo_url=logo)

    def render_object(self, content: PassContent) -> GoogleResource:
        return objects.render_object(content)

    def tier_message(
        self, content: PassContent, now: datetime, *, notify: bool
    ) -> Mapping[str, Any]:
        return objects.tier_message(content, now, notify=notify)

    async def put_class(self, issuer_id: str, resource: GoogleResource) -> None:
        reply = await self._client.insert(issuer_id, resource.collection, resource.body)
        if reply.status == 409:
            reply = await self._client.patch(
                issuer_id, resource.collection, resource.id, resource.body
            )
        _expect_ok(reply.status, resource)

    async def put_object(
        self, issuer_id: str, resource: GoogleResource, *, exists: bool, notify: bool
    ) -> None:
        body = dict(resource.body)
        if notify:
            # Google then tells the holder about the changed fields (counted as a notice).
            body["notifyPreference"] = "notifyOnUpdate"
        if exists:
            reply = await self._client.patch(issuer_id, resource.collection, resource.id, body)
            if reply.status == 404:
                reply = await self._client.insert(issuer_id, resource.collection, body)
        else:
            reply = await self._client.insert(issuer_id, resource.collection, body)
            if reply.status == 409:
                reply = await self._client.patch(issuer_id, resource.collection, resource.id, body)
        _expect_ok(reply.status, resource)

    async def add_message(
        self, issuer_id: str, resource: GoogleResource, message: Mapping[str, Any]
    ) -> None:
        reply = await self._client.add_message(issuer_id, resource.collection, resource.id, message)
        _expect_ok(reply.status, resource)

    async def close(self) -> None:
        await self._session.close()


def _expect_ok(status: int, resource: GoogleResource) -> None:
    if not 200 <= status < 300:
        raise WalletUnavailable(f"Google answered {status} for {resource.collection}")
