"""Dashboard sessions (docs/dashboard.md#security): a signed cookie that names the dash key by its stored
digest, with idle and absolute expiry, the CSRF token bound to it, and the sign-in rate limit.

Nothing here is trusted on its own: every request also re-checks the key through ``KeyService`` (whose
cache lives 0.5 s), so revoking or expiring the key ends its sessions within 1 s on every process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass

COOKIE = "scrawn_dash"
PRE_COOKIE = "scrawn_dash_pre"  # the sign-in form's CSRF nonce, before there is a session
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 60 * 60
REFRESH_SECONDS = 60  # re-issue the cookie (sliding idle expiry) at most this often
SIGN_IN_ATTEMPTS = 10  # failed sign-ins allowed per client address and window, per process
SIGN_IN_WINDOW = 5 * 60


@dataclass(frozen=True)
class Session:
    digest: str  # the dash key's HMAC digest, as the keys table stores it
    issued: int  # Unix seconds
    seen: int
    nonce: str  # binds the CSRF token to this session

    def expired(self, now: int) -> bool:
        return now - self.issued >= ABSOLUTE_SECONDS or now - self.seen >= IDLE_SECONDS

    def needs_refresh(self, now: int) -> bool:
        return now - self.seen >= REFRESH_SECONDS


class Sessions:
    """Signs and reads session cookies and CSRF tokens under a key derived from the server secret."""

    def __init__(self, server_secret: str) -> None:
        self._key = hmac.new(server_secret.encode(), b"scrawn dashboard session v1", hashlib.sha256).digest()

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def new(self, digest: str) -> Session:
        now = int(time.time())
        return Session(digest, now, now, secrets.token_urlsafe(16))

    def encode(self, session: Session) -> str:
        payload = json.dumps([session.digest, session.issued, session.seen, session.nonce]).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(body.encode())}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged, malformed or expired."""
        if not cookie or "." not in cookie or len(cookie) > 1024:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body.encode())):
            return None
        try:
            digest, issued, seen, nonce = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(str(digest), int(issued), int(seen), str(nonce))
        except (ValueError, TypeError):
            return None
        return None if session.expired(int(time.time())) else session

    def touched(self, session: Session) -> Session:
        return Session(session.digest, session.issued, int(time.time()), session.nonce)

    def csrf_token(self, nonce: str) -> str:
        return self._sign(b"csrf:" + nonce.encode())[:40]

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token(nonce))


class SignInLimiter:
    """Failed sign-ins per client address in a sliding window (in this process: with N processes an
    attacker gets at most N times the budget, still far too few to guess a 190-bit key)."""

    def __init__(self, attempts: int = SIGN_IN_ATTEMPTS, window: float = SIGN_IN_WINDOW) -> None:
        self._attempts = attempts
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = time.monotonic()
        failures = self._failures.setdefault(client, deque())
        while failures and now - failures[0] > self._window:
            failures.popleft()
        return failures

    def allowed(self, client: str) -> bool:
        return len(self._recent(client)) < self._attempts

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._recent(client).append(time.monotonic())
