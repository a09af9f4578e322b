"""Standard Webhooks signatures (docs/webhooks.md): ``v1`` is HMAC-SHA256 under the endpoint's ``whsec_``
secret, ``v1a`` is Ed25519 under its ``whsk_`` key, both over ``{id}.{timestamp}.{body}``."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
PRIVATE_PREFIX = "whsk_"
PUBLIC_PREFIX = "whpk_"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def new_secret() -> str:
    return SECRET_PREFIX + _b64(secrets.token_bytes(32))


def new_signing_key() -> str:
    return PRIVATE_PREFIX + _b64(Ed25519PrivateKey.generate().private_bytes_raw())


def _private_key(signing_key: str) -> Ed25519PrivateKey:
    if not signing_key.startswith(PRIVATE_PREFIX):
        raise ValueError("not a whsk_ signing key")
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(signing_key[len(PRIVATE_PREFIX) :]))


def public_key(signing_key: str) -> str:
    raw = _private_key(signing_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_PREFIX + _b64(raw)


def sign(message_id: str, timestamp: int, payload: str, secret: str, signing_key: str) -> dict[str, str]:
    """The three Standard Webhooks headers for ``payload`` sent at ``timestamp`` (Unix seconds)."""
    v1 = Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), payload)
    signed = f"{message_id}.{timestamp}.{payload}".encode()
    v1a = "v1a," + _b64(_private_key(signing_key).sign(signed))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"{v1} {v1a}",
    }
