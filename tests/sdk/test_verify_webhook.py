"""verify_webhook: the SDK's check of a Scrawn webhook (signature, timestamp tolerance, typed event)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

from scrawn import WebhookEvent, WebhookVerificationError, verify_webhook
from scrawn.server.webhooks import signing

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = (
    "whpk_" + base64.b64encode(PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
)
BODY = json.dumps(
    {
        "type": "balance.low",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "data": {"mode": "live", "userId": "u1", "threshold": "5", "balance": "4.5", "available": "4.5"},
    },
    separators=(",", ":"),
)


def headers(body: str = BODY, *, at: int | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    """Signed independently of the server: the standardwebhooks library and cryptography directly."""
    ts = int(time.time()) if at is None else at
    v1 = Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(ts, UTC), body)
    v1a = base64.b64encode(PRIVATE.sign(f"{msg_id}.{ts}.{body}".encode())).decode()
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": str(ts), "Webhook-Signature": f"{v1} v1a,{v1a}"}


@pytest.mark.parametrize("key", [SECRET, PUBLIC], ids=["v1", "v1a"])
def test_a_valid_webhook_gives_a_typed_event(key: str) -> None:
    event = verify_webhook(BODY.encode(), headers(), key)
    assert event == WebhookEvent(
        id="msg_1",
        type="balance.low",
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        data={"mode": "live", "userId": "u1", "threshold": "5", "balance": "4.5", "available": "4.5"},
    )
    assert verify_webhook(BODY, headers(), key).id == "msg_1"  # str bodies too


def test_the_servers_signatures_verify_with_both_keys() -> None:
    secret, signing_key = signing.new_secret(), signing.new_signing_key()
    signed = signing.sign("msg_2", int(time.time()), BODY, secret, signing_key)
    assert verify_webhook(BODY, signed, secret).type == "balance.low"
    assert verify_webhook(BODY, signed, signing.public_key(signing_key)).type == "balance.low"
    with pytest.raises(WebhookVerificationError, match="No matching"):
        verify_webhook(BODY, signed, SECRET)


@pytest.mark.parametrize("key", [SECRET, PUBLIC], ids=["v1", "v1a"])
def test_a_tampered_body_is_refused(key: str) -> None:
    tampered = BODY.replace('"balance":"4.5"', '"balance":"45"')
    with pytest.raises(WebhookVerificationError, match="No matching webhook signature"):
        verify_webhook(tampered, headers(), key)


def test_a_changed_id_is_refused() -> None:
    sent = headers() | {"Webhook-Id": "msg_other"}
    with pytest.raises(WebhookVerificationError, match="No matching"):
        verify_webhook(BODY, sent, SECRET)


def test_the_wrong_secret_or_key_is_refused() -> None:
    other_secret = "whsec_" + base64.b64encode(b"z" * 32).decode()
    other_public = signing.public_key(signing.new_signing_key())
    for key in (other_secret, other_public):
        with pytest.raises(WebhookVerificationError, match="No matching"):
            verify_webhook(BODY, headers(), key)
    with pytest.raises(WebhookVerificationError, match="whsec_"):
        verify_webhook(BODY, headers(), "not-a-secret")


@pytest.mark.parametrize("key", [SECRET, PUBLIC], ids=["v1", "v1a"])
def test_stale_and_future_timestamps_are_refused(key: str) -> None:
    now = int(time.time())
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(BODY, headers(at=now - 301), key)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(BODY, headers(at=now + 301), key)
    assert verify_webhook(BODY, headers(at=now - 3000), key, tolerance=3600).id == "msg_1"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_named(name: str) -> None:
    sent = {k: v for k, v in headers().items() if k.lower() != name}
    with pytest.raises(WebhookVerificationError, match=f"Missing webhook header.*{name}"):
        verify_webhook(BODY, sent, SECRET)


@pytest.mark.parametrize(
    "signature", ["garbage", "v1,!!!not-base64!!!", "v1", ",,,", "v2,AAAA", "v1a," + "A" * 88]
)
def test_garbage_signature_headers_are_refused(signature: str) -> None:
    sent = headers() | {"Webhook-Signature": signature}
    for key in (SECRET, PUBLIC):
        with pytest.raises(WebhookVerificationError, match="No matching"):
            verify_webhook(BODY, sent, key)


def test_a_garbled_entry_does_not_hide_a_good_one() -> None:
    sent = headers()
    sent["Webhook-Signature"] = "v1,@@@ " + sent["Webhook-Signature"]
    assert verify_webhook(BODY, sent, SECRET).id == "msg_1"


def test_a_bad_timestamp_header_is_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="Unix seconds"):
        verify_webhook(BODY, headers() | {"Webhook-Timestamp": "yesterday"}, SECRET)


@pytest.mark.parametrize("body", ["not json", "[1,2]", '{"type":"x"}', b"\xff\xfe"])
def test_a_signed_body_that_is_not_an_event_is_refused(body: str | bytes) -> None:
    text = body.decode("latin-1") if isinstance(body, bytes) else body
    with pytest.raises(WebhookVerificationError, match=r"not JSON|not an event|not UTF-8"):
        verify_webhook(body, headers(text), SECRET)
