"""``wallets/repository.py`` (the reservations table) on both databases: found by key and by id within
their project and mode, one row changed at a time, the due ones oldest first (skipping rows another
transaction holds on PostgreSQL), and newest-first pages by user and by activity."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import pytest

from scrawn.server.wallets import repository as repo
from scrawn.server.wallets.repository import Reservation
from tests.server.fresh import Fresh

MODE = "live"
NOW = 1_750_000_000_000


def reservation(
    fresh: Fresh, rid: str, *, user: str = "u", created: int = NOW, expires: int = NOW + 60_000
) -> Reservation:
    return Reservation(
        project_id=fresh.project_id,
        mode=MODE,
        id=rid,
        user_id=user,
        amount=Decimal("2.5"),
        status="active",
        idempotency_key=f"key-{rid}",
        fingerprint="f" * 64,
        description=None,
        expires_at=expires,
        created_at=created,
    )


async def store(fresh: Fresh, *rows: Reservation) -> None:
    async with fresh.db.write() as conn:
        for row in rows:
            await repo.insert(conn, row)


async def test_a_reservation_is_found_by_key_and_id_only_in_its_project_and_mode(fresh: Fresh) -> None:
    first = reservation(fresh, "r1")
    await store(fresh, first, replace(first, mode="test"), replace(first, project_id="another"))
    async with fresh.db.read() as conn:
        assert await repo.by_key(conn, fresh.project_id, MODE, "key-r1") == first
        assert await repo.by_id(conn, fresh.project_id, MODE, "r1") == first
        assert await repo.by_key(conn, fresh.project_id, MODE, "key-r2") is None
        assert await repo.by_id(conn, fresh.project_id, MODE, "r2") is None
        in_test = await repo.by_id(conn, fresh.project_id, "test", "r1")
        assert in_test is not None and in_test.mode == "test"


async def test_update_one_changes_only_that_reservation(fresh: Fresh) -> None:
    first, second = reservation(fresh, "r1"), reservation(fresh, "r2")
    await store(fresh, first, second)
    async with fresh.db.write() as conn:
        await repo.update_one(
            conn,
            fresh.project_id,
            MODE,
            "r1",
            status="confirmed",
            confirmed_amount=Decimal("1.000001"),
            transaction_id="t1",
        )
    async with fresh.db.read() as conn:
        changed = await repo.by_id(conn, fresh.project_id, MODE, "r1", lock=True)
        assert changed == replace(
            first, status="confirmed", confirmed_amount=Decimal("1.000001"), transaction_id="t1"
        )
        assert await repo.by_id(conn, fresh.project_id, MODE, "r2") == second


async def test_due_reservations_are_the_active_ones_past_expiry_oldest_first(fresh: Fresh) -> None:
    await store(
        fresh,
        reservation(fresh, "later", expires=NOW - 10),
        reservation(fresh, "sooner", expires=NOW - 20),
        reservation(fresh, "not-yet", expires=NOW + 1),
        replace(reservation(fresh, "done", expires=NOW - 30), status="cancelled"),
        replace(reservation(fresh, "elsewhere", expires=NOW - 15), project_id="another"),
    )
    async with fresh.db.write() as conn:
        assert not await repo.any_due(conn, NOW - 21)
        assert await repo.any_due(conn, NOW - 20)  # expiry is inclusive
        assert [r.id for r in await repo.due(conn, NOW, 10)] == ["sooner", "elsewhere", "later"]
        assert [r.id for r in await repo.due(conn, NOW, 1)] == ["sooner"]


async def test_due_skips_a_reservation_another_transaction_holds(fresh: Fresh) -> None:
    if fresh.db.is_sqlite:
        pytest.skip("SQLite has one writer: no second transaction runs beside it")
    await store(
        fresh, reservation(fresh, "held", expires=NOW - 20), reservation(fresh, "free", expires=NOW - 10)
    )
    locked = fresh.while_another_holds(
        lambda conn: repo.by_id(conn, fresh.project_id, MODE, "held", lock=True)
    )
    async with locked, fresh.db.write() as conn:
        assert [r.id for r in await asyncio.wait_for(repo.due(conn, NOW, 10), 10)] == ["free"]


async def test_pages_are_newest_first_by_user_and_by_activity(fresh: Fresh) -> None:
    await store(
        fresh,
        reservation(fresh, "a", created=NOW),
        reservation(fresh, "b", created=NOW + 5),
        reservation(fresh, "c", created=NOW + 5),
        reservation(fresh, "v1", user="v", created=NOW + 7),
        reservation(fresh, "gone", created=NOW + 8, expires=NOW + 100),  # past its expiry at NOW + 100
        replace(reservation(fresh, "cancelled", created=NOW + 9), status="cancelled"),
    )

    async def ids(
        user: str | None, active_at: int | None, size: int, cursor: tuple[int, str] | None = None
    ) -> list[str]:
        async with fresh.db.read() as conn:
            rows = await repo.page(
                conn, fresh.project_id, MODE, user_id=user, active_at=active_at, size=size, cursor=cursor
            )
        return [r.id for r in rows]

    assert await ids(None, None, 10) == ["cancelled", "gone", "v1", "c", "b", "a"]
    assert await ids("u", None, 2) == ["cancelled", "gone", "c"]  # a page and one more
    assert await ids("u", None, 2, (NOW + 5, "c")) == ["b", "a"]  # after the cursor, through the tie
    assert await ids("u", NOW + 100, 10) == ["c", "b", "a"]  # active and not yet expired
    assert await ids(None, NOW + 100, 10) == ["v1", "c", "b", "a"]
