"""``projects/repository.py`` and ``keys/repository.py`` against both databases: the pattern for a domain's
mirrored repository tests (a fresh migrated database per test: `migrated` in tests/server/conftest.py)."""

from __future__ import annotations

from decimal import Decimal

from scrawn.server.db.engine import Database
from scrawn.server.keys import repository as keys
from scrawn.server.keys.types import KeyRecord
from scrawn.server.projects import repository
from scrawn.server.projects.types import LATE_WINDOW_DEFAULT


async def test_insert_list_and_get(migrated: Database) -> None:
    async with migrated.write() as conn:
        first = await repository.insert(conn, "first")
        second = await repository.insert(conn, "second")
    async with migrated.read() as conn:
        assert {(first, "first"), (second, "second")} == set(await repository.ids_and_names(conn))
        got = await repository.get(conn, first)
        assert got is not None
        assert (got.id, got.name, got.currency, got.amount_unit, got.usd_rate) == (
            first,
            "first",
            "USD",
            "minor",
            None,
        )
        assert got.late_window_days == LATE_WINDOW_DEFAULT
        assert await repository.get(conn, "no-such-project") is None
        assert await repository.late_window_days(conn, "no-such-project") is None
        assert [p.id for p in await repository.list_all(conn)] == [
            p for p, _ in await repository.ids_and_names(conn)
        ]


async def test_update_settings_round_trips_exact_rates(migrated: Database) -> None:
    async with migrated.write() as conn:
        project_id = await repository.insert(conn, "p")
        changes: dict[str, str | int | None] = {
            "currency": "EUR",
            "usd_rate": "0.923456789012345678",
            "amount_unit": "major",
            "late_window_days": 7,
        }
        await repository.update_settings(conn, project_id, changes)
    async with migrated.read() as conn:
        got = await repository.get(conn, project_id)
        assert got is not None
        assert got.currency == "EUR" and got.amount_unit == "major"
        assert got.usd_rate == Decimal("0.923456789012345678")  # text in, exact Decimal out: no float
        assert await repository.late_window_days(conn, project_id) == 7
    async with migrated.write() as conn:
        await repository.update_settings(conn, project_id, {"usd_rate": None})
    async with migrated.read() as conn:
        got = await repository.get(conn, project_id)
        assert got is not None and got.usd_rate is None


async def test_keys_are_found_by_hash_listed_and_revoked_per_project(migrated: Database) -> None:
    async with migrated.write() as conn:
        project_id = await repository.insert(conn, "p")
        other = await repository.insert(conn, "other")
        record = KeyRecord(project_id, "k1", "live", "ci", "scrn_live_abcd…", 1000, None, None, None)
        await keys.insert(conn, record, "digest-1")
    async with migrated.read() as conn:
        assert await keys.by_hash(conn, "digest-1") == record
        assert await keys.by_hash(conn, "digest-2") is None
        assert await keys.list_for(conn, project_id) == [record]
        assert await keys.list_for(conn, other) == []
    async with migrated.write() as conn:
        assert not await keys.set_revoked(conn, other, "k1", 2000)  # never across projects
        assert await keys.set_revoked(conn, project_id, "k1", 2000)
        await keys.set_last_used(conn, project_id, "k1", 3000)
    async with migrated.read() as conn:
        got = await keys.by_hash(conn, "digest-1")
        assert got is not None and (got.revoked_at, got.last_used_at) == (2000, 3000)
