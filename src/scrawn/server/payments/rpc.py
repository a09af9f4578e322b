"""``payment.v1.PaymentService``: ``CreateCheckoutLink`` (DESIGN §3.2, §7) and ``CreatePortalLink``
(docs/portal.md)."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.payment.v1 import payment_pb2 as pb
from scrawn.errors import ValidationError
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import KeyService
from scrawn.server.limits import MAX_USER_ID
from scrawn.server.payments import config as configs
from scrawn.server.payments.service import check_top_up, open_checkout
from scrawn.server.portal import service as portal
from scrawn.server.rpc import Rpc, handler
from scrawn.server.secretbox import SecretBox


class PaymentRpc(Rpc):
    def __init__(self, db: Database, keys: KeyService, box: SecretBox, public_url: str) -> None:
        super().__init__(db, keys)
        self._box = box
        self._public_url = public_url

    @handler
    async def create_checkout_link(
        self, request: pb.CreateCheckoutLinkRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateCheckoutLinkResponse:
        caller = await self._caller(ctx, ("live", "test"), "create checkout links")
        if not request.userId.strip() or len(request.userId) > MAX_USER_ID:
            raise ValidationError(
                "userId",
                "must be a non-empty string of at most 256 characters",
                context="Checkout validation failed",
            )
        top_up = check_top_up(request.topUpAmount if request.HasField("topUpAmount") else None)
        return_url = request.returnUrl if request.HasField("returnUrl") else None
        try:
            configs.check_url("returnUrl", return_url)
        except ValidationError as e:
            raise ValidationError("returnUrl", e.problem, context="Checkout validation failed") from None
        checkout_id = await open_checkout(
            self._db,
            self._box,
            caller.project_id,
            caller.mode,
            request.userId,
            top_up=top_up,
            return_url=return_url,
            public_url=self._public_url,
        )
        return pb.CreateCheckoutLinkResponse(checkoutLink=f"{self._public_url}/checkout/{checkout_id}")

    @handler
    async def create_portal_link(
        self, request: pb.CreatePortalLinkRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreatePortalLinkResponse:
        caller = await self._caller(ctx)
        user, return_url, lifetime = portal.check_request(
            request.userId,
            request.returnUrl if request.HasField("returnUrl") else None,
            request.expiresIn if request.HasField("expiresIn") else None,
        )
        url, expires_at = portal.create_link(self._box, self._public_url, caller, user, return_url, lifetime)
        return pb.CreatePortalLinkResponse(url=url, expiresAt=expires_at)
