"""``events/repository.py`` and ``events/quarantine/repository.py`` on both databases: rows stored and read
back exactly (amounts to the micro-unit), keys that are taken stay taken, voids mark once, keyset pages
neither repeat nor skip, and the quarantine's waiting list."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scrawn.server.events import repository
from scrawn.server.events.price import Unpriceable
from scrawn.server.events.quarantine import repository as kept
from scrawn.server.events.repository import Scope
from tests.server.events.inputs import MODE, basic, priced
from tests.server.fresh import Fresh

D = Decimal


async def store(fresh: Fresh, *keys: str, at: int = 1_000, amount: str = "1.5") -> set[tuple[str, str, str]]:
    rows = [
        repository.event_row(priced(fresh.project_id, basic("u1", k, amount=amount)), f"id-{k}", at)
        for k in keys
    ]
    async with fresh.db.write() as conn:
        return await repository.insert_new(conn, rows)


async def test_insert_new_reports_only_new_keys_and_billed_reads_them_back(fresh: Fresh) -> None:
    pid = fresh.project_id
    assert await store(fresh, "a", "b", amount="0.000001") == {(pid, MODE, "a"), (pid, MODE, "b")}
    assert await store(fresh, "b", "c") == {(pid, MODE, "c")}  # "b" is taken: left alone, not reported
    async with fresh.db.read() as conn:
        found = await repository.billed(conn, pid, MODE, ["a", "b", "c", "missing"])
        other_mode = await repository.billed(conn, pid, "test", ["a"])
    assert sorted(found) == ["a", "b", "c"]
    assert (found["a"].event_id, found["a"].debit, found["a"].ingested_at) == ("id-a", D("0.000001"), 1_000)
    assert found["b"].debit == D("0.000001")  # the first write stands; the second never replaced it
    assert found["a"].fingerprint == basic("u1", "a", amount="0.000001").fingerprint
    assert other_mode == {}


async def test_an_event_id_taken_under_another_key_inserts_nothing(fresh: Fresh) -> None:
    await store(fresh, "a")
    row = repository.event_row(priced(fresh.project_id, basic("u1", "other")), "id-a", 2_000)
    async with fresh.db.write() as conn:
        assert await repository.insert_new(conn, [row]) == set()
    async with fresh.db.read() as conn:
        assert await repository.billed(conn, fresh.project_id, MODE, ["other"]) == {}


async def test_known_keys_covers_stored_and_kept_events(fresh: Fresh) -> None:
    pid = fresh.project_id
    await store(fresh, "stored")
    why = Unpriceable("basicUsage.tag", "Tag not found: X", "tag_not_found")
    async with fresh.db.write() as conn:
        row = kept.kept_row(pid, MODE, basic("u1", "kept", tag="X"), "kept", why, 5)
        assert await kept.insert_new(conn, [row]) == {"kept"}
    async with fresh.db.read() as conn:
        assert await repository.known_keys(conn, pid, MODE, ["stored", "kept", "new"]) == {"stored", "kept"}
        assert await repository.known_keys(conn, pid, "test", ["stored", "kept"]) == set()


async def test_a_void_marks_once_and_the_lock_reads_the_marks(fresh: Fresh) -> None:
    pid = fresh.project_id
    await store(fresh, "a", amount="2.25")
    async with fresh.db.write() as conn:
        found = await repository.lock_for_void(conn, pid, MODE, idempotency_key="a")
        assert found is not None and (found.id, found.debit, found.voided_at) == ("id-a", D("2.25"), None)
        assert await repository.mark_voided(conn, pid, MODE, "id-a", by="key1", reason="wrong", now=7)
        assert not await repository.mark_voided(conn, pid, MODE, "id-a", by="key2", reason="again", now=8)
    async with fresh.db.read() as conn:
        again = await repository.lock_for_void(conn, pid, MODE, event_id="id-a")
        assert await repository.lock_for_void(conn, pid, "test", event_id="id-a") is None
    assert again is not None
    assert (again.voided_at, again.voided_by, again.void_reason) == (7, "key1", "wrong")


async def test_pages_walk_every_event_once_in_ingest_order(fresh: Fresh) -> None:
    pid = fresh.project_id
    for i in range(7):  # three share a millisecond: the id breaks the tie across page boundaries
        await store(fresh, f"k{i}", at=1_000 if i < 3 else 1_000 + i)
    async with fresh.db.read() as conn:
        seen = [r.id async for page in repository.pages(conn, Scope(pid, MODE), 2) for r in page]
        newest = await repository.newest(conn, Scope(pid, MODE), 2)
        since = [
            r.id async for page in repository.pages(conn, Scope(pid, MODE, since=1_005), 2) for r in page
        ]
        got = await repository.get(conn, pid, MODE, "id-k4")
    assert seen == [f"id-k{i}" for i in range(7)]
    assert [r.id for r in newest] == ["id-k6", "id-k5"]
    assert since == ["id-k5", "id-k6"]
    assert got is not None and (got.debit, got.user_id, got.event_type, got.voided_at) == (
        D("1.5"),
        "u1",
        "BASIC_USAGE",
        None,
    )


async def test_pricing_naming_pages_through_both_modes_once(
    fresh: Fresh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyset pages of 2 (ties on the millisecond broken by id) over both modes, on an autocommit read."""
    monkeypatch.setattr(repository, "PRICING_PAGE", 2)
    pid = fresh.project_id
    for i in range(5):
        await store(fresh, f"k{i}", at=1_000 if i < 3 else 1_000 + i)
    test_rows = [
        repository.event_row(priced(pid, basic("u1", f"t{i}", amount="2"), "test"), f"id-t{i}", 1_000)
        for i in range(3)
    ]
    async with fresh.db.write() as conn:
        await repository.insert_new(conn, test_rows)
    async with fresh.db.read() as conn:
        every = [p async for p in repository.pricing_naming(conn, pid, 0, '"amount"')]
        recent = [p async for p in repository.pricing_naming(conn, pid, 1_004, '"amount"')]
        none = [p async for p in repository.pricing_naming(conn, pid, 0, '"CALL"')]
    assert sorted(every) == ['{"amount":"1.5"}'] * 5 + ['{"amount":"2"}'] * 3
    assert recent == ['{"amount":"1.5"}'] * 1
    assert none == []


async def test_the_waiting_list_counts_pages_and_forgets_repriced_rows(fresh: Fresh) -> None:
    pid = fresh.project_id
    tag = Unpriceable("basicUsage.tag", "Tag not found: X", "tag_not_found")
    expr = Unpriceable("basicUsage.expr", "Expression not found: E", "expression_not_found")
    rows = [kept.kept_row(pid, MODE, basic("u1", f"k{i}", tag="X"), f"k{i}", tag, 10 + i) for i in range(3)]
    rows.append(kept.kept_row(pid, MODE, basic("u1", "k3", tag="X"), "k3", expr, 20))
    async with fresh.db.write() as conn:
        assert await kept.insert_new(conn, rows) == {"k0", "k1", "k2", "k3"}
        assert await kept.insert_new(conn, rows[:1]) == set()  # kept once
    ids = [str(r["id"]) for r in rows]
    async with fresh.db.read() as conn:
        assert await kept.waiting_by_reason(conn, pid, MODE) == {
            "expression_not_found": 1,
            "tag_not_found": 3,
        }
        first = await kept.page_waiting(conn, pid, MODE, limit=2)
        after = await kept.position(conn, pid, MODE, first[-1].id)
        rest = await kept.page_waiting(conn, pid, MODE, limit=5, after=after)
        by_key = await kept.by_keys(conn, pid, MODE, ["k3", "nope"])
    assert [r.id for r in first + rest] == ids
    assert (first[0].attempts, first[0].reason_code, first[0].repriced_at) == (0, "tag_not_found", None)
    assert list(by_key) == ["k3"] and by_key["k3"].field == "basicUsage.expr"
    async with fresh.db.write() as conn:
        await kept.mark_attempt(
            conn, pid, MODE, ids[:1], 50, reason_code="refused", field="f" * 80, reason="r"
        )
        await kept.mark_repriced(conn, pid, MODE, ids[1:3], 60)
    async with fresh.db.read() as conn:
        assert await kept.count_waiting(conn, pid, MODE) == 2
        assert await kept.count_waiting(conn, pid, MODE, ids[1:]) == 1
        assert await kept.known_ids(conn, pid, MODE, [*ids, "nope"]) == set(ids)  # repriced rows stay
        [retried, _] = await kept.page_waiting(conn, pid, MODE, limit=5)
    assert (retried.attempts, retried.reason_code, retried.field, retried.last_attempt_at) == (
        1,
        "refused",
        "f" * 64,
        50,
    )
