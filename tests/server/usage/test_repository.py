"""``usage/repository.py`` on both databases: a key recorded once, filters within the project and mode,
pages through ties in time, and sums (overall, per key, per time slot) that stay exact past 2^63
micro-units, where SQLite's own SUM() would fail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from scrawn.money import MAX_MICROS, from_micros
from scrawn.server.db.sums import joined
from scrawn.server.usage import repository as repo
from scrawn.server.usage.types import Filter
from tests.server.fresh import Fresh

MODE = "live"
NOW = 1_750_000_000_000
BIGGEST = from_micros(MAX_MICROS)  # the most one cost holds


def values(
    fresh: Fresh, rid: str, *, cost: Decimal = Decimal(1), at: int = NOW, **more: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "project_id": fresh.project_id,
        "mode": MODE,
        "id": rid,
        "idempotency_key": f"key-{rid}",
        "fingerprint": "f" * 64,
        "user_id": "u",
        "context": "system",
        "model": "gpt-4o",
        "provider": "openai",
        "usage_type": "text",
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "audio_ms": 0,
        "input_cost": cost,
        "output_cost": Decimal(0),
        "cached_cost": Decimal(0),
        "cache_write_cost": Decimal(0),
        "audio_cost": Decimal(0),
        "cost": cost,
        "pricing": "{}",
        "occurred_at": at,
        "created_at": at,
    }
    return row | more


async def insert(fresh: Fresh, *rows: dict[str, Any]) -> None:
    async with fresh.db.write() as conn:
        for row in rows:
            assert await repo.insert_record(conn, row)


def cost(row: Any) -> Decimal:
    return from_micros(joined(row, "cost") or 0)


async def test_a_key_is_recorded_once_per_project_and_mode(fresh: Fresh) -> None:
    await insert(fresh, values(fresh, "r1"), values(fresh, "r1", mode="test"))
    async with fresh.db.write() as conn:
        assert not await repo.insert_record(conn, values(fresh, "r2", idempotency_key="key-r1"))
    async with fresh.db.read() as conn:
        found = await repo.by_key(conn, fresh.project_id, MODE, "key-r1")
        assert found is not None and found.id == "r1"
        assert await repo.by_key(conn, fresh.project_id, MODE, "key-r2") is None
        assert await repo.any_record(conn, fresh.project_id)
        assert not await repo.any_record(conn, "another-project")


async def test_pages_filter_and_go_newest_first_through_ties(fresh: Fresh) -> None:
    await insert(
        fresh,
        values(fresh, "a", at=NOW),
        values(fresh, "b", at=NOW + 5),
        values(fresh, "c", at=NOW + 5),
        values(fresh, "m", at=NOW + 6, model="gpt-4o-mini"),
        values(fresh, "v", at=NOW + 7, user_id="v"),
        values(fresh, "t", at=NOW + 8, mode="test"),
    )

    async def ids(f: Filter, cursor: tuple[int, str] | None = None, limit: int = 10) -> list[str]:
        async with fresh.db.read() as conn:
            return [r.id for r in await repo.page(conn, fresh.project_id, MODE, f, cursor, limit)]

    assert await ids(Filter()) == ["v", "m", "c", "b", "a"]
    assert await ids(Filter(user_id="u"), limit=2) == ["m", "c"]
    assert await ids(Filter(user_id="u"), cursor=(NOW + 5, "c")) == ["b", "a"]
    assert await ids(Filter(model="gpt-4o-mini")) == ["m"]
    assert await ids(Filter(start=NOW + 5, end=NOW + 7)) == ["m", "c", "b"]  # [start, end)


async def test_sums_stay_exact_past_the_64_bit_range(fresh: Fresh) -> None:
    await insert(
        fresh,
        values(fresh, "x1", cost=BIGGEST, at=NOW),
        values(fresh, "x2", cost=BIGGEST, at=NOW + 1, model="gpt-4o-mini"),
        values(fresh, "x3", cost=Decimal("0.000001"), at=NOW + 10_000),
    )
    async with fresh.db.read() as conn:
        total = await repo.totals(conn, fresh.project_id, MODE, Filter())
        by_model = await repo.totals_by(conn, fresh.project_id, MODE, Filter(), "model")
        by_slot = await repo.totals_by_slot(conn, fresh.project_id, MODE, Filter(), 5_000)
        none = await repo.totals(conn, fresh.project_id, MODE, Filter(user_id="nobody"))
    assert (cost(total), total.records) == (2 * BIGGEST + Decimal("0.000001"), 3)
    assert joined(total, "input_tokens") == 30
    assert {r.key: cost(r) for r in by_model} == {
        "gpt-4o": BIGGEST + Decimal("0.000001"),
        "gpt-4o-mini": BIGGEST,
    }
    assert {int(r.slot): (cost(r), r.records) for r in by_slot} == {
        NOW // 5_000: (2 * BIGGEST, 2),
        (NOW + 10_000) // 5_000: (Decimal("0.000001"), 1),
    }
    assert (cost(none), none.records) == (0, 0)
