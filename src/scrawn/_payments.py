"""Sans-I/O ``payment.v1.PaymentService`` calls (docs/payments.md): validated before anything is sent."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from scrawn._core import check_user_id
from scrawn._proto.payment.v1 import payment_pb2 as pb
from scrawn._retry import Rpc
from scrawn._wallet import check_amount
from scrawn.errors import ValidationError

SERVICE: Final = "/payment.v1.PaymentService/"
CONTEXT: Final = "Checkout validation failed"


def check_return_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("return_url", f"must be a string, not {type(value).__name__}", context=CONTEXT)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2048:
        raise ValidationError(
            "return_url", "must be an http(s) URL of at most 2048 characters", context=CONTEXT
        )
    return value


def collect_payment(user_id: object, top_up: object, return_url: object) -> Rpc[str]:
    """A checkout link for what ``user_id`` owes, or for a ``top_up`` of their prepaid wallet. Safe to
    retry: the server answers the same link while the same checkout is open."""
    user = check_user_id(user_id, "user_id", CONTEXT)
    request = pb.CreateCheckoutLinkRequest(userId=user)
    if top_up is not None:
        request.topUpAmount = check_amount("top_up", top_up, context=CONTEXT)
    if (url := check_return_url(return_url)) is not None:
        request.returnUrl = url
    return Rpc(
        "collect_payment",
        SERVICE + "CreateCheckoutLink",
        request,
        pb.CreateCheckoutLinkResponse,
        lambda response: str(response.checkoutLink),
        user_id=user,
    )
