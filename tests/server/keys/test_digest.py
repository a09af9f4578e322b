"""``KeyService.authenticate_digest`` (the dashboard's session check) on both databases: a key known only by
its stored digest authenticates like the key itself, with the same cache, so revocation ends it within 1 s."""

from __future__ import annotations

import asyncio

import pytest

from scrawn.errors import UnauthenticatedError
from scrawn.server.keys import service
from scrawn.server.keys.service import KeyService
from tests.server.fresh import Fresh

SECRET = "test-secret"


async def test_a_digest_authenticates_until_the_key_is_revoked(fresh: Fresh) -> None:
    keys = KeyService(fresh.db, SECRET)
    async with fresh.db.write() as conn:
        record, key = await keys.create_key(conn, fresh.project_id, "dash", "dashboard")
    digest = keys.digest(key)
    assert digest == service.hash_key(SECRET, key) and key not in digest
    caller = await keys.authenticate_digest(digest, "test")
    assert (caller.project_id, caller.key_id, caller.role, caller.mode) == (
        fresh.project_id,
        record.id,
        "dash",
        "test",
    )
    assert await keys.authenticate_digest(digest) == await keys.authenticate(f"Bearer {key}")
    async with fresh.db.write() as conn:
        await KeyService.revoke_key(conn, fresh.project_id, record.id)
    await asyncio.sleep(service.CACHE_SECONDS + 0.1)
    with pytest.raises(UnauthenticatedError) as caught:
        await keys.authenticate_digest(digest)
    assert caught.value.message == service.MSG_REVOKED
    with pytest.raises(UnauthenticatedError) as unknown:
        await keys.authenticate_digest(service.hash_key(SECRET, service.generate_key("dash")))
    assert unknown.value.message == service.MSG_NOT_FOUND
