"""API keys (DESIGN §2): ``scrn_<role>_<32 chars>``, stored only as HMAC-SHA256 under the
server secret, with the exact authentication errors of the contract."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import string
import time
import uuid
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError, UnauthenticatedError, ValidationError
from scrawn.server import paging
from scrawn.server.db.engine import Database, now_ms
from scrawn.server.keys import repository
from scrawn.server.keys.types import ROLES, Caller, KeyRecord, Mode, Role
from scrawn.server.logs import note_caller

__all__ = ["ROLES", "Caller", "KeyRecord", "KeyService", "Mode", "Role"]

log = logging.getLogger("scrawn.keys")
KEY_PATTERN = re.compile(r"scrn_(dash|live|test)_[A-Za-z0-9]{32}")
KEY_LENGTH = 42
_ALPHABET = string.ascii_letters + string.digits
# A revocation must reach every process within 1 s (DESIGN §2): cached lookups live half that.
CACHE_SECONDS = 0.5
LAST_USED_EVERY_MS = 60_000

MSG_MISSING = "Missing Authorization header"
MSG_NOT_BEARER = 'Authorization header must be in format "Bearer <api_key>"'
MSG_PREFIX = "Invalid API key: Invalid key prefix — expected scrn_dash_, scrn_live_, or scrn_test_"
MSG_FORMAT = "Invalid API key: Invalid API key format"
MSG_NOT_FOUND = "Invalid API key: API key not found"
MSG_REVOKED = "API key has been revoked"
MSG_EXPIRED = "API key has expired"


def generate_key(role: Role) -> str:
    return f"scrn_{role}_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_key(secret: str, key: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def parse_bearer(header: str | None) -> str:
    """The API key in an ``authorization`` header, or the contract's error for what is wrong with it."""
    if header is None or not header.strip():
        raise UnauthenticatedError(MSG_MISSING)
    scheme, _, key = header.strip().partition(" ")
    if scheme != "Bearer" or not key.strip():
        raise UnauthenticatedError(MSG_NOT_BEARER)
    key = key.strip()
    if not key.startswith(("scrn_dash_", "scrn_live_", "scrn_test_")):
        raise UnauthenticatedError(MSG_PREFIX)
    if len(key) != KEY_LENGTH or not KEY_PATTERN.fullmatch(key):
        raise UnauthenticatedError(MSG_FORMAT)
    return key


class KeyService:
    def __init__(self, db: Database, secret: str) -> None:
        self._db = db
        self._secret = secret
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def authenticate(self, header: str | None, mode_header: str | None = None) -> Caller:
        return await self.authenticate_digest(self.digest(parse_bearer(header)), mode_header)

    def digest(self, key: str) -> str:
        """The stored form of a well-formed key (the dashboard's session remembers this, never the key)."""
        return hash_key(self._secret, key)

    async def authenticate_digest(self, digest: str, mode_header: str | None = None) -> Caller:
        """``authenticate`` for a key known by its digest: the same cache, so a revocation ends it within
        1 s on every process."""
        record = await self._lookup(digest)
        if record is None:
            raise UnauthenticatedError(MSG_NOT_FOUND)
        now = now_ms()
        if record.revoked_at is not None:
            raise UnauthenticatedError(MSG_REVOKED)
        if record.expires_at is not None and record.expires_at <= now:
            raise UnauthenticatedError(MSG_EXPIRED)
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_EVERY_MS:
            self._touch(digest, record, now)
        caller = Caller(record.project_id, record.id, record.role, _mode_for(record.role, mode_header))
        note_caller(caller.project_id, caller.key_id, caller.mode)
        return caller

    async def _lookup(self, digest: str) -> KeyRecord | None:
        hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        # One lookup per key at a time: when a cached entry lapses, concurrent callers share the query
        # instead of each taking a database connection.
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            async with self._db.read() as conn:
                record = await repository.by_hash(conn, digest)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic(), record)
            future.set_result(record)
            return record
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # mark it retrieved: waiters re-raise it, and none waiting is fine too
            raise
        finally:
            del self._inflight[digest]

    def _touch(self, digest: str, record: KeyRecord, now: int) -> None:
        """Record the key's last use in the background, at most once a minute per key and process."""
        self._cache[digest] = (
            self._cache.get(digest, (time.monotonic(), None))[0],
            replace(record, last_used_at=now),
        )
        task = asyncio.get_running_loop().create_task(self._write_last_used(record, now))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, record: KeyRecord, now: int) -> None:
        try:
            async with self._db.write() as conn:
                await repository.set_last_used(conn, record.project_id, record.id, now)
        except Exception:  # best effort: never fail a call over bookkeeping
            log.warning("could not record last use of key %s", record.id, exc_info=True)

    async def create_key(
        self, conn: AsyncConnection, project_id: str, role: Role, name: str, expires_in: int | None = None
    ) -> tuple[KeyRecord, str]:
        """Create a key; the plain text is returned once and never stored."""
        name = name.strip()
        if not 1 <= len(name) <= 255 or any(ord(c) < 32 for c in name):
            raise ValidationError(
                "name",
                "must be 1 to 255 characters, without control characters",
                context="API key validation failed",
            )
        key = generate_key(role)
        now = now_ms()
        record = KeyRecord(
            project_id=project_id,
            id=str(uuid.uuid4()),
            role=role,
            name=name,
            display=key[:14] + "…",
            created_at=now,
            expires_at=now + expires_in * 1000 if expires_in else None,
            revoked_at=None,
            last_used_at=None,
        )
        await repository.insert(conn, record, hash_key(self._secret, key))
        return record, key

    @staticmethod
    async def list_keys(conn: AsyncConnection, project_id: str) -> list[KeyRecord]:
        return await repository.list_for(conn, project_id)

    @staticmethod
    async def live_key(conn: AsyncConnection, project_id: str, key_id: str) -> KeyRecord | None:
        """The project's key ``key_id`` while it can still be used: None once revoked or expired."""
        found = await repository.by_id(conn, project_id, key_id)
        if found is None or found.revoked_at is not None:
            return None
        return None if found.expires_at is not None and found.expires_at <= now_ms() else found

    @staticmethod
    async def page_keys(
        conn: AsyncConnection, project_id: str, limit: int, token: str
    ) -> tuple[list[KeyRecord], str]:
        """One page of keys, oldest first, and the token of the next page ("" after the last)."""
        size = paging.page_size(limit)
        found = await repository.page(conn, project_id, paging.cursor(token), size + 1)
        return paging.next_page(found, size, paging.created)

    @staticmethod
    async def revoke_key(conn: AsyncConnection, project_id: str, key_id: str) -> KeyRecord:
        """Revoke a key of the project; revoking a revoked key changes nothing (its first time stays)."""
        if not await repository.set_revoked(conn, project_id, key_id, now_ms()):
            raise NotFoundError(f"API key not found: {key_id}", field="id")
        found = await repository.by_id(conn, project_id, key_id)
        assert found is not None  # updated just now, in this transaction
        return found


def _mode_for(role: Role, mode_header: str | None) -> Mode:
    if role == "test":
        return "test"
    if role == "live":
        return "live"
    # Dashboard keys work in either mode; `x-scrawn-mode` picks it (live by default).
    if mode_header in (None, "", "live"):
        return "live"
    if mode_header == "test":
        return "test"
    raise ValidationError("x-scrawn-mode", 'must be "live" or "test"', context="Request validation failed")
