"""Sans-I/O ``payment.v1.PaymentService`` calls (docs/payments.md): validated before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from scrawn._core import check_user_id
from scrawn._proto.payment.v1 import payment_pb2 as pb
from scrawn._retry import Rpc
from scrawn._wallet import check_amount
from scrawn._wallet_results import time_of_ms
from scrawn.errors import ValidationError

SERVICE: Final = "/payment.v1.PaymentService/"
CONTEXT: Final = "Checkout validation failed"
PORTAL_CONTEXT: Final = "Portal link validation failed"
MIN_PORTAL_SECONDS, MAX_PORTAL_SECONDS = 60, 7 * 86_400


@dataclass(frozen=True)
class PortalLink:
    """A signed, read-only link to one user's usage portal (docs/portal.md); it stops working at
    ``expires_at``, or sooner when the API key that made it is revoked or expires."""

    url: str
    expires_at: datetime


def check_return_url(value: object, context: str = CONTEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("return_url", f"must be a string, not {type(value).__name__}", context=context)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2048:
        raise ValidationError(
            "return_url", "must be an http(s) URL of at most 2048 characters", context=context
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


def portal_link(user_id: object, return_url: object, expires_in: object) -> Rpc[PortalLink]:
    """A portal link for ``user_id``, valid ``expires_in`` seconds (60 to 7 days). Nothing is stored on the
    server, so a retry just makes another link."""
    user = check_user_id(user_id, "user_id", PORTAL_CONTEXT)
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not MIN_PORTAL_SECONDS <= expires_in <= MAX_PORTAL_SECONDS
    ):
        raise ValidationError(
            "expires_in",
            f"must be whole seconds from {MIN_PORTAL_SECONDS} to {MAX_PORTAL_SECONDS} (7 days)",
            context=PORTAL_CONTEXT,
        )
    request = pb.CreatePortalLinkRequest(userId=user, expiresIn=expires_in)
    if (url := check_return_url(return_url, PORTAL_CONTEXT)) is not None:
        request.returnUrl = url
    return Rpc(
        "portal_link",
        SERVICE + "CreatePortalLink",
        request,
        pb.CreatePortalLinkResponse,
        lambda response: PortalLink(str(response.url), _when(response.expiresAt)),
        user_id=user,
    )


def _when(ms: int) -> datetime:
    found = time_of_ms(ms)
    assert found is not None  # the server always sets it
    return found
