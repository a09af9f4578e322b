"""Verify the webhooks a Scrawn server sends to your endpoint (docs/webhooks.md).

    from scrawn import verify_webhook
    event = verify_webhook(request.body, request.headers, "whsec_…")  # or the endpoint's "whpk_…" key
    if already_seen(event.id): return 200  # retries and replays carry the same id

Standard Webhooks: ``webhook-signature`` lists ``v1,<HMAC-SHA256>`` (checked with a ``whsec_`` secret)
and ``v1a,<Ed25519>`` (checked with a ``whpk_`` public key; needs ``cryptography``, ``scrawn[webhooks]``),
both over ``{webhook-id}.{webhook-timestamp}.{body}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scrawn.errors import WebhookVerificationError

if TYPE_CHECKING:
    from scrawn.types import JSONValue

__all__ = ["WebhookEvent", "WebhookVerificationError", "verify_webhook"]

_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_PUBLIC_PREFIX = "whpk_"


@dataclass(frozen=True)
class WebhookEvent:
    id: str  # webhook-id: the same on every retry and replay of one event; dedupe on it
    type: str  # payment.succeeded | payment.failed | payment.refunded | balance.low | reservation.expired
    timestamp: datetime  # when the event happened (the body's "timestamp"), UTC
    data: dict[str, JSONValue] = field(default_factory=dict)  # the event's fields, as JSON


def verify_webhook(
    body: bytes | str, headers: Mapping[str, str], secret: str, *, tolerance: int = 300
) -> WebhookEvent:
    """Check the signature and that ``webhook-timestamp`` is within ``tolerance`` seconds of now, then
    return the event. ``secret`` is the endpoint's ``whsec_`` secret or its ``whpk_`` public key. Raises
    :class:`WebhookVerificationError` when anything is wrong. Pass the body exactly as received."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    missing = [
        n
        for n, v in (
            ("webhook-id", message_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not v
    ]
    if missing:
        raise WebhookVerificationError(f"Missing webhook header(s): {', '.join(missing)}")
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise WebhookVerificationError("The webhook body is not UTF-8") from None
    if not stamp.strip().isdigit():
        raise WebhookVerificationError("webhook-timestamp must be Unix seconds")
    sent = int(stamp)
    now = int(time.time())
    if sent < now - tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is too old ({now - sent} s ago; tolerance {tolerance} s)"
        )
    if sent > now + tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is in the future ({sent - now} s ahead)")
    signed = f"{message_id}.{sent}.{text}"
    offered = _signatures(signatures)
    if secret.startswith(_PUBLIC_PREFIX):
        ok = any(_ed25519_ok(secret, sig, signed) for version, sig in offered if version == "v1a")
    elif secret.startswith(_SECRET_PREFIX):
        ok = any(_hmac_ok(secret, message_id, sent, text, sig) for version, sig in offered if version == "v1")
    else:
        raise WebhookVerificationError(
            'secret must be the endpoint\'s "whsec_…" secret or "whpk_…" public key'
        )
    if not ok:
        raise WebhookVerificationError("No matching webhook signature: wrong secret or a modified body")
    return _event(message_id, text)


def _signatures(header: str) -> list[tuple[str, bytes]]:
    found = []
    for part in header.split():
        version, _, encoded = part.partition(",")
        try:
            found.append((version, base64.b64decode(encoded, validate=True)))
        except (binascii.Error, ValueError):
            continue  # one garbled entry must not hide a good one
    return found


def _hmac_ok(secret: str, message_id: str, sent: int, text: str, signature: bytes) -> bool:
    from standardwebhooks import Webhook

    try:
        expected = Webhook(secret).sign(message_id, datetime.fromtimestamp(sent, UTC), text)
    except (binascii.Error, ValueError) as e:
        raise WebhookVerificationError(f"The whsec_ secret is not valid base64: {e}") from None
    return hmac.compare_digest(base64.b64decode(expected.partition(",")[2]), signature)


def _ed25519_ok(public_key: str, signature: bytes, signed: str) -> bool:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:  # pragma: no cover - depends on the install
        raise WebhookVerificationError(
            "Verifying v1a (whpk_) signatures needs the cryptography package: pip install 'scrawn[webhooks]'"
        ) from None
    try:
        key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(public_key[len(_PUBLIC_PREFIX) :], validate=True)
        )
    except (binascii.Error, ValueError) as e:
        raise WebhookVerificationError(f"The whpk_ public key is not valid: {e}") from None
    try:
        key.verify(signature, signed.encode())
    except InvalidSignature:
        return False
    return True


def _event(message_id: str, text: str) -> WebhookEvent:
    try:
        body = json.loads(text)
    except ValueError:
        raise WebhookVerificationError("The webhook body is not JSON") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("type"), str)
        or not isinstance(body.get("data"), dict)
    ):
        raise WebhookVerificationError('The webhook body is not an event: {"type", "timestamp", "data"}')
    try:
        at = datetime.fromisoformat(str(body.get("timestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        raise WebhookVerificationError("The webhook body's timestamp is not an ISO 8601 time") from None
    return WebhookEvent(message_id, body["type"], at if at.tzinfo else at.replace(tzinfo=UTC), body["data"])
