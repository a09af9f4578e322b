"""Portal tokens: ``{payload}.{tag}``, both base64url, where the payload names the project, mode, user,
expiry and the API key that made the link, and the tag is an HMAC of it under the server secret. Anything
that does not verify is just "no such page": the caller learns nothing about why."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass

from scrawn.server.secretbox import SecretBox

PURPOSE = "portal v1"
MAX_TOKEN = 8192  # longer than any token this server makes (user id ≤ 256 characters, return URL ≤ 2048)


@dataclass(frozen=True)
class PortalClaims:
    project_id: str
    mode: str
    user_id: str
    expires_at: int  # Unix ms
    key_id: str  # the key that made the link: revoking or expiring it ends the link
    return_url: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(box: SecretBox, claims: PortalClaims) -> str:
    body = {"p": claims.project_id, "m": claims.mode, "u": claims.user_id, "e": claims.expires_at}
    body |= {"k": claims.key_id} | ({"r": claims.return_url} if claims.return_url else {})
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_b64(box.sign(payload.encode(), PURPOSE))}"


def verify(box: SecretBox, token: str, now: int) -> PortalClaims | None:
    """The claims of a genuine, unexpired token; None for anything else."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        return None
    payload, tag = token.split(".")
    try:
        given = _unb64(tag)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, box.sign(payload.encode(), PURPOSE)):
        return None
    body = json.loads(_unb64(payload))  # ours, since the tag verified
    claims = PortalClaims(body["p"], body["m"], body["u"], int(body["e"]), body["k"], body.get("r"))
    return claims if claims.expires_at > now else None
