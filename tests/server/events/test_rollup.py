"""The usage rollup on both databases: after any mix of batches (repeats, retries, conflicting content,
debits too large for a balance, sums past 2⁶³ micro-units), voids and reprices, in either mode and across
quarter hours, and under concurrent writers, it equals a from-scratch aggregate of the events table; the
migration that creates it fills it with that aggregate."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from scrawn.money import to_micros
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.db.schema import events
from scrawn.server.events import batch, repository, rollup, void_service
from scrawn.server.events import rollup_repository as rollup_rows
from scrawn.server.events.price import Unpriceable
from scrawn.server.events.quarantine import repository as kept
from scrawn.server.events.quarantine import service as quarantine
from scrawn.server.pricing import service as catalog
from tests.server.events.inputs import basic, priced
from tests.server.fresh import Fresh

SLOT = rollup.SLOT_MS
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
# Whole-slot starts, the last millisecond of a slot, and a moment in the next one.
TIMES = [T0, T0 + 1, T0 + SLOT - 1, T0 + SLOT, T0 + 5 * SLOT + 17, T0 + 96 * SLOT]
AMOUNTS = ["0.000001", "1", "2.5", "123456.789012", "9000000000000"]  # the last: 9e18 micro-units
USERS = [f"u{i}" for i in range(6)]

Aggregate = dict[tuple[str, str, int], tuple[int, int]]


async def from_scratch(db: Database, project_id: str) -> Aggregate:
    """What the rollup must hold: every stored, unvoided event counted in its ingest quarter hour."""
    found: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    async with db.read() as conn:
        rows = await conn.execute(
            select(events.c.mode, events.c.ingested_at, events.c.debit).where(
                events.c.project_id == project_id, events.c.voided_at.is_(None)
            )
        )
        for r in rows:
            total = found[(project_id, r.mode, rollup.slot_of(r.ingested_at))]
            total[0] += 1
            total[1] += to_micros(r.debit)
    return {k: (n, micros) for k, (n, micros) in found.items()}


async def rolled_up(db: Database, project_id: str) -> Aggregate:
    """The rollup without its emptied slots (every event of a slot voided)."""
    async with db.read() as conn:
        slots = await rollup_rows.all_slots(conn, project_id)
    assert all(n >= 0 for n, _ in slots.values())
    return {k: v for k, v in slots.items() if v != (0, 0)}


def event(rng: random.Random, pid: str, keys: int) -> batch.PricedEvent:
    key, user = f"k{rng.randrange(keys)}", rng.choice(USERS)
    amount = rng.choice(AMOUNTS)
    content = f"{key}/{amount}" if rng.random() < 0.8 else None  # else: other content under a used key
    return priced(pid, basic(user, key, amount=amount, content=content), rng.choice(["live", "test"]))


@pytest.mark.parametrize("seed", range(3))
async def test_the_rollup_equals_the_events_after_any_mix(
    fresh: Fresh, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng, pid = random.Random(seed), fresh.project_id
    async with fresh.db.write() as conn:
        await catalog.put_tag(conn, pid, "T", Decimal("2.5"))
    for step in range(25):
        at = rng.choice(TIMES)
        monkeypatch.setattr(batch, "now_ms", lambda at=at: at)
        action = rng.random()
        if action < 0.55:  # a flush: repeats inside it, retries of earlier flushes, conflicts
            flush = [event(rng, pid, 40) for _ in range(rng.randrange(1, 25))]
            async with fresh.db.write() as conn:
                await batch.store_batch(conn, flush)
        elif action < 0.85:  # a void (again, sometimes: answered, never counted twice)
            mode = rng.choice(["live", "test"])
            async with fresh.db.read() as conn:
                stored = list(await repository.ingested_ids(conn, repository.Scope(pid, mode)))
            if stored:
                target = void_service.VoidTarget(event_id=rng.choice(stored))
                async with fresh.db.write() as conn:
                    await void_service.void_event(conn, pid, mode, target, "test", "key-1")
        else:  # a kept event repriced through the ingest path (unless its key was billed meanwhile)
            mode, key = rng.choice(["live", "test"]), f"k{rng.randrange(40)}"
            why = Unpriceable("basicUsage.tag", "Tag not found: T", "tag_not_found")
            async with fresh.db.write() as conn:
                await kept.insert_new(
                    conn, [kept.kept_row(pid, mode, basic("u1", key, tag="T"), key, why, T0)]
                )
            await quarantine.reprice(fresh.db, pid, mode)
        assert await rolled_up(fresh.db, pid) == await from_scratch(fresh.db, pid), f"after step {step}"
    expected = await from_scratch(fresh.db, pid)
    assert len(expected) > 3 and any(micros >= 2**63 for _, micros in expected.values())  # the mix was rich


async def test_concurrent_writers_add_up(fresh: Fresh, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many transactions write one slot at once (PostgreSQL runs them concurrently; SQLite one by one)."""
    pid = fresh.project_id
    monkeypatch.setattr(batch, "now_ms", lambda: T0)

    async def writer(w: int) -> None:
        for f in range(5):
            flush = [priced(pid, basic(f"u{w}", f"w{w}-{f}-{i}", amount="1.25")) for i in range(10)]
            async with fresh.db.write() as conn:
                await batch.store_batch(conn, flush)

    await asyncio.gather(*(writer(w) for w in range(8)))

    async def voider(w: int) -> None:
        target = void_service.VoidTarget(idempotency_key=f"w{w}-0-0")
        async with fresh.db.write() as conn:
            await void_service.void_event(conn, pid, "live", target, "test", "key-1")

    await asyncio.gather(*(voider(w) for w in range(8)))
    expected = {(pid, "live", T0): (8 * 50 - 8, to_micros(Decimal("1.25")) * (8 * 50 - 8))}
    assert await rolled_up(fresh.db, pid) == await from_scratch(fresh.db, pid) == expected


async def test_the_migration_fills_the_rollup_from_the_events(database_url: str) -> None:
    db = Database(database_url)
    try:
        await migrate(db, "0009")
        rng, pid = random.Random(7), "p-backfill"
        rows = []
        for i in range(300):
            ev = priced(
                pid,
                basic(rng.choice(USERS), f"k{i}", amount=rng.choice(AMOUNTS)),
                rng.choice(["live", "test"]),
            )
            at = rng.choice(TIMES) + rng.randrange(3) * 7 * SLOT
            row = dict(zip(repository.COLUMNS, repository.event_row(ev, f"id-{i}", at), strict=True))
            row["debit"] = ev.debit  # insert() takes amounts in minor units
            voided = rng.random() < 0.2
            row.update(
                voided_at=T0 if voided else None, voided_by="key-1" if voided else None, void_reason=None
            )
            rows.append(row)
        async with db.write() as conn:
            await conn.execute(insert(events), rows)
        await migrate(db)
        assert await rolled_up(db, pid) == await from_scratch(db, pid)
        assert any(micros >= 2**63 for _, micros in (await from_scratch(db, pid)).values())
    finally:
        await db.dispose()
