"""``payment.v1.PaymentService``. Checkout providers are not built yet (issue 6): until a project has one,
DESIGN §3.5 answers FAILED_PRECONDITION saying what is missing, never UNIMPLEMENTED or a bare 404."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.payment.v1 import payment_pb2 as pb
from scrawn.errors import FailedPreconditionError, ValidationError
from scrawn.server.keys.service import KeyService
from scrawn.server.rpc import authenticate, handler
from scrawn.server.wallets.service import MAX_USER_ID


class PaymentRpc:
    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    @handler
    async def create_checkout_link(
        self, request: pb.CreateCheckoutLinkRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateCheckoutLinkResponse:
        caller = await authenticate(self._keys, ctx)
        caller.require(("live", "test"), "create checkout links")
        if not request.userId.strip() or len(request.userId) > MAX_USER_ID:
            raise ValidationError(
                "userId",
                "must be a non-empty string of at most 256 characters",
                context="Checkout validation failed",
            )
        raise FailedPreconditionError(
            "No payment provider is configured for this project: checkout links need a Lemon Squeezy or "
            "Stripe configuration, which this server version cannot store yet",
            field="provider",
        )
