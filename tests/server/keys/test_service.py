"""``keys/service.py`` on both databases: keys are stored only as a hash, authentication answers the
contract's exact errors (missing, malformed, unknown, revoked, expired), and the mode follows the role."""

from __future__ import annotations

import asyncio

import pytest

from scrawn.errors import NotFoundError, UnauthenticatedError, ValidationError
from scrawn.server.keys import repository, service
from scrawn.server.keys.service import KeyService
from tests.server.fresh import Fresh

SECRET = "test-secret"


def test_parse_bearer_names_what_is_wrong() -> None:
    key = service.generate_key("live")
    assert service.parse_bearer(f"Bearer {key}") == key
    for header, message in (
        (None, service.MSG_MISSING),
        ("  ", service.MSG_MISSING),
        (f"Basic {key}", service.MSG_NOT_BEARER),
        ("Bearer sk_live_abc", service.MSG_PREFIX),
        (f"Bearer {key}x", service.MSG_FORMAT),
        ("Bearer scrn_live_" + "!" * 32, service.MSG_FORMAT),
    ):
        with pytest.raises(UnauthenticatedError) as caught:
            service.parse_bearer(header)
        assert caught.value.message == message


async def test_keys_are_stored_only_as_a_hash_and_authenticate(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    keys = KeyService(db, SECRET)
    async with db.write() as conn:
        record, key = await keys.create_key(conn, project_id, "dash", "  ops  ")
    assert (record.name, record.role, record.display) == ("ops", "dash", key[:14] + "…")
    assert key.startswith("scrn_dash_") and len(key) == service.KEY_LENGTH
    async with db.read() as conn:
        assert await repository.by_hash(conn, service.hash_key(SECRET, key)) == record
        assert await repository.by_hash(conn, service.hash_key("another secret", key)) is None
        assert [k.id for k in await KeyService.list_keys(conn, project_id)] == [record.id]
    caller = await keys.authenticate(f"Bearer {key}", "test")
    assert (caller.project_id, caller.key_id, caller.role, caller.mode) == (
        project_id,
        record.id,
        "dash",
        "test",
    )
    assert (await keys.authenticate(f"Bearer {key}")).mode == "live"
    with pytest.raises(ValidationError) as caught:
        await keys.authenticate(f"Bearer {key}", "staging")
    assert caught.value.field == "x-scrawn-mode"
    with pytest.raises(UnauthenticatedError, match=service.MSG_NOT_FOUND):
        await keys.authenticate(f"Bearer {service.generate_key('live')}")
    await asyncio.gather(*keys._background)  # the last-use write runs in the background
    async with db.read() as conn:
        assert (await KeyService.list_keys(conn, project_id))[0].last_used_at is not None


async def test_a_live_key_is_always_live_and_a_test_key_test(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    keys = KeyService(db, SECRET)
    async with db.write() as conn:
        _, live = await keys.create_key(conn, project_id, "live", "live")
        _, test = await keys.create_key(conn, project_id, "test", "test")
    assert (await keys.authenticate(f"Bearer {live}", "test")).mode == "live"
    assert (await keys.authenticate(f"Bearer {test}", "live")).mode == "test"
    await asyncio.gather(*keys._background)


async def test_revoked_and_expired_keys_are_refused(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    keys = KeyService(db, SECRET)
    async with db.write() as conn:
        revoked, revoked_key = await keys.create_key(conn, project_id, "live", "old")
        _, expiring_key = await keys.create_key(conn, project_id, "live", "brief", expires_in=1)
        await KeyService.revoke_key(conn, project_id, revoked.id)
        with pytest.raises(NotFoundError) as caught:
            await KeyService.revoke_key(conn, project_id, "no-such-key")
        assert caught.value.field == "id"
    with pytest.raises(UnauthenticatedError, match=service.MSG_REVOKED):
        await keys.authenticate(f"Bearer {revoked_key}")
    await asyncio.sleep(1.1)
    with pytest.raises(UnauthenticatedError, match=service.MSG_EXPIRED):
        await keys.authenticate(f"Bearer {expiring_key}")


async def test_a_key_name_is_checked(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        for name in ("", "   ", "x" * 256):
            with pytest.raises(ValidationError) as caught:
                await KeyService(db, SECRET).create_key(conn, project_id, "live", name)
            assert caught.value.field == "name"
