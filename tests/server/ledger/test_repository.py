"""``ledger/repository.py`` and ``ledger/batch_repository.py`` on both databases: the balance upsert (spend
per month, saturating), keyed entries written once, newest-first pages with ties, credit lots (live, due,
raced, forgotten), the micro-unit reads, and the row lock."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from scrawn.errors import AlreadyExistsError
from scrawn.money import MAX_MICROS, from_micros
from scrawn.server.ledger import batch_repository as batch_repo
from scrawn.server.ledger import repository as repo
from scrawn.server.ledger.rules import Lot, LotRaceError
from scrawn.server.ledger.types import LedgerEntry, Scope
from tests.server.fresh import Fresh

D = Decimal
MODE = "live"
NOW = 1_750_000_000_000  # Unix ms; each test picks its own instants around it


def scope(fresh: Fresh, user_id: str) -> Scope:
    return (fresh.project_id, MODE, user_id)


async def new_lot(fresh: Fresh, lot_id: str, user_id: str, remaining: str, expires_at: int) -> None:
    async with fresh.db.write() as conn:
        await repo.create_lot(
            conn,
            fresh.project_id,
            MODE,
            lot_id=lot_id,
            user_id=user_id,
            amount=D(10),
            remaining=D(remaining),
            expires_at=expires_at,
            now=NOW,
        )


async def test_the_balance_upsert_creates_moves_and_counts_spend_per_month(fresh: Fresh) -> None:
    a, b = scope(fresh, "a"), scope(fresh, "b")
    async with fresh.db.write() as conn:
        first = await batch_repo.add_to_balances(
            conn, [(a, D("-2.5"), D("2.5")), (b, D(7), D(0))], NOW, 202506
        )
        same_month = await batch_repo.add_to_balances(conn, [(a, D("-1.25"), D("1.25"))], NOW + 1, 202506)
        next_month = await batch_repo.add_to_balances(conn, [(a, D(-1), D(1))], NOW + 2, 202507)
        refund = await batch_repo.add_to_balances(conn, [(a, D("0.5"), D("-0.5"))], NOW + 3, 202507)
    assert set(first) == {a, b}  # rows created on first use, returned by scope
    assert (first[a].balance, first[a].spent, first[b].balance, first[b].spent) == (D("-2.5"), 2.5, 7, 0)
    assert (same_month[a].balance, same_month[a].spent) == (D("-3.75"), D("3.75"))
    assert (next_month[a].balance, next_month[a].spent, next_month[a].spend_period) == (
        D("-4.75"),
        D(1),  # a new month counts only its own spend
        202507,
    )
    assert (refund[a].balance, refund[a].spent) == (D("-4.25"), D("0.5"))  # a negative spend gives back
    async with fresh.db.read() as conn:
        stored = await repo.read_balance(conn, *a)
        assert stored == refund[a]
        assert await repo.read_balance(conn, fresh.project_id, "test", "a") is None  # modes are apart


async def test_spent_saturates_at_the_storable_maximum_instead_of_overflowing(fresh: Fresh) -> None:
    a = scope(fresh, "a")
    biggest = from_micros(MAX_MICROS)
    async with fresh.db.write() as conn:
        await batch_repo.add_to_balances(conn, [(a, D(0), biggest - 1)], NOW, 202506)
        after = await batch_repo.add_to_balances(conn, [(a, D(0), D(5))], NOW, 202506)
    assert after[a].spent == biggest


async def test_a_keyed_entry_is_written_once_and_found_by_its_key(fresh: Fresh) -> None:
    def grant(amount: str) -> LedgerEntry:
        return LedgerEntry(
            fresh.project_id, MODE, "u", "grant", D(amount), idempotency_key="k", description="d"
        )

    async with fresh.db.write() as conn:
        assert await repo.insert_entry_once(conn, grant("5"), "e1", NOW)
        assert not await repo.insert_entry_once(conn, grant("6"), "e2", NOW)  # the key is taken
        await repo.create_lot(
            conn,
            fresh.project_id,
            MODE,
            lot_id="e1",
            user_id="u",
            amount=D(5),
            remaining=D(5),
            expires_at=NOW + 1000,
            now=NOW,
        )
    async with fresh.db.read() as conn:
        found = await repo.entry_by_key(conn, fresh.project_id, MODE, "k")
        assert found is not None
        assert (found.id, found.amount, found.description, found.lot_expires_at) == ("e1", 5, "d", NOW + 1000)
        assert await repo.entry_by_key(conn, fresh.project_id, "test", "k") is None
        assert not await repo.any_ledger_entry(conn, "another-project")
        assert await repo.any_ledger_entry(conn, fresh.project_id)


async def test_a_raced_key_is_answered_as_already_used_naming_the_field(fresh: Fresh) -> None:
    entries = [
        (LedgerEntry(fresh.project_id, MODE, user, "debit", D(-1), idempotency_key="same"), f"e-{user}")
        for user in ("u", "v")
    ]
    with pytest.raises(AlreadyExistsError) as err:
        async with fresh.db.write() as conn:
            with repo.key_taken("debit"):
                await repo.insert_entries(conn, entries, NOW)
    assert err.value.field == "idempotencyKey"
    assert err.value.message == "idempotencyKey: already used for a different debit"
    async with fresh.db.read() as conn:
        assert not await repo.any_ledger_entry(conn, fresh.project_id)  # rolled back whole


async def test_entries_page_newest_first_through_ties_in_time(fresh: Fresh) -> None:
    times = {"a": NOW, "b": NOW + 5, "c": NOW + 5, "d": NOW + 5, "e": NOW + 9}
    async with fresh.db.write() as conn:
        for entry_id, at in times.items():
            entry = LedgerEntry(fresh.project_id, MODE, "u", "usage", D(-1))
            await repo.insert_entries(conn, [(entry, entry_id)], at)
        other = LedgerEntry(fresh.project_id, MODE, "someone-else", "usage", D(-1))
        await repo.insert_entries(conn, [(other, "x")], NOW + 7)
    seen: list[str] = []
    cursor: tuple[int, str] | None = None
    async with fresh.db.read() as conn:
        while True:
            page = await repo.entries_page(conn, fresh.project_id, MODE, "u", 2, cursor)
            assert len(page) <= 3  # one more than a page says whether another follows
            seen += [e.id for e in page[:2]]
            if len(page) <= 2:
                break
            cursor = (page[1].created_at, page[1].id)
    assert seen == ["e", "d", "c", "b", "a"]


async def test_live_lots_are_in_consumption_order_and_due_by_filters(fresh: Fresh) -> None:
    await new_lot(fresh, "late", "u", "3", NOW + 500)
    await new_lot(fresh, "tie-b", "u", "1", NOW + 100)
    await new_lot(fresh, "tie-a", "u", "2", NOW + 100)
    await new_lot(fresh, "spent", "u", "0", NOW)
    await new_lot(fresh, "other", "v", "4", NOW + 50)
    async with fresh.db.read() as conn:
        live = await repo.live_lots(conn, fresh.project_id, MODE, ["u", "v", "u", "nobody"])
        due = await repo.live_lots(conn, fresh.project_id, MODE, ["u", "v"], due_by=NOW + 100)
        every = await repo.lots_of(conn, fresh.project_id, MODE, "u")

    def ids(found: dict[str, list[Lot]]) -> dict[str, list[str]]:
        return {user: [lot.id for lot in lots] for user, lots in found.items()}

    assert ids(live) == {
        "u": ["tie-a", "tie-b", "late"],  # soonest first, ties by id; nothing left: not live
        "v": ["other"],
    }
    assert ids(due) == {"u": ["tie-a", "tie-b"], "v": ["other"]}
    assert [lot.id for lot in every] == ["spent", "tie-a", "tie-b", "late"]
    assert [(lot.remaining, lot.amount, lot.due_at) for lot in every[:2]] == [
        (D(0), D(10), None),  # nothing left to expire: no sweeper need look
        (D(2), D(10), NOW + 100),
    ]


async def test_live_lots_and_balances_span_more_users_than_one_in_list(fresh: Fresh) -> None:
    users = [f"user-{i:04}" for i in range(repo.CHUNK + 3)]
    async with fresh.db.write() as conn:
        deltas = [(scope(fresh, u), D(i).scaleb(-6), D(0)) for i, u in enumerate(users)]
        await batch_repo.add_to_balances(conn, deltas, NOW, 202506)
        for i, user in enumerate(users):
            await repo.create_lot(
                conn,
                fresh.project_id,
                MODE,
                lot_id=f"lot-{i}",
                user_id=user,
                amount=D(1),
                remaining=D(1),
                expires_at=NOW + i,
                now=NOW,
            )
    async with fresh.db.read() as conn:
        micros = await batch_repo.balances_micros(conn, fresh.project_id, MODE, [*users, "nobody"])
        lots = await repo.live_lots(conn, fresh.project_id, MODE, users)
    assert micros == {u: i for i, u in enumerate(users)}  # exact micro-units; no row, no key
    assert len(lots) == len(users) and lots[users[-1]][0].id == f"lot-{len(users) - 1}"


async def test_a_lot_changed_since_it_was_read_is_a_race_and_stays_as_it_was(fresh: Fresh) -> None:
    await new_lot(fresh, "l", "u", "5", NOW + 100)
    async with fresh.db.read() as conn:
        (read,) = await repo.lots_of(conn, fresh.project_id, MODE, "u")
    async with fresh.db.write() as conn:
        await repo.update_lot(conn, fresh.project_id, MODE, read, remaining=D(4))
    with pytest.raises(LotRaceError):
        async with fresh.db.write() as conn:
            await repo.update_lot(conn, fresh.project_id, MODE, read, remaining=D(1))  # stale
    async with fresh.db.read() as conn:
        (now,) = await repo.lots_of(conn, fresh.project_id, MODE, "u")
    assert now.remaining == 4


async def test_due_lots_are_found_by_user_and_spent_ones_forgotten(fresh: Fresh) -> None:
    await new_lot(fresh, "u-due", "u", "2", NOW - 10)
    await new_lot(fresh, "v-due", "v", "2", NOW - 20)
    await new_lot(fresh, "v-later", "v", "2", NOW + 1000)
    async with fresh.db.read() as conn:
        assert not await repo.any_lot_due(conn, NOW - 21)
        assert await repo.any_lot_due(conn, NOW)
        assert await repo.users_with_lots_due(conn, NOW, 10) == (2, [scope(fresh, "u"), scope(fresh, "v")])
        assert await repo.users_with_lots_due(conn, NOW, 1) == (1, [scope(fresh, "v")])  # soonest due first
    async with fresh.db.read() as conn:
        (u_lot,) = await repo.lots_of(conn, fresh.project_id, MODE, "u")
    async with fresh.db.write() as conn:
        await repo.update_lot(conn, fresh.project_id, MODE, u_lot, remaining=D(0))  # consumed meanwhile
        await repo.forget_spent_lots(conn, scope(fresh, "u"), NOW)
        await repo.forget_spent_lots(conn, scope(fresh, "v"), NOW)  # v's due lot still holds 2: kept
    async with fresh.db.read() as conn:
        assert await repo.users_with_lots_due(conn, NOW, 10) == (1, [scope(fresh, "v")])


async def test_balances_list_by_user_and_capture_lookup_is_exact(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        for user in ("c", "a", "b"):
            await repo.create_balance(conn, fresh.project_id, MODE, user, NOW)
        await repo.create_balance(conn, fresh.project_id, MODE, "a", NOW)  # a twin: nothing happens
        capture = LedgerEntry(fresh.project_id, MODE, "a", "capture", D(-3), reservation_id="r1")
        debit = LedgerEntry(fresh.project_id, MODE, "a", "debit", D(-3), reservation_id="r2")
        await repo.insert_entries(conn, [(capture, "t1"), (debit, "t2")], NOW)
    async with fresh.db.read() as conn:
        assert [r.user_id for r in await repo.list_balances(conn, fresh.project_id, MODE)] == ["a", "b", "c"]
        assert [r.user_id for r in await repo.list_balances(conn, fresh.project_id, MODE, 2)] == ["a", "b"]
        assert await repo.capture(conn, fresh.project_id, MODE, "t1", "a") == repo.Capture("r1")
        assert await repo.capture(conn, fresh.project_id, MODE, "t1", "b") is None  # another user's
        assert await repo.capture(conn, fresh.project_id, MODE, "t2", "a") is None  # not a capture


async def test_skip_locked_passes_over_a_row_another_transaction_holds(fresh: Fresh) -> None:
    if fresh.db.is_sqlite:
        pytest.skip("SQLite has one writer: its write transaction is the lock")
    async with fresh.db.write() as conn:
        await repo.create_balance(conn, fresh.project_id, MODE, "u", NOW)
    locked = fresh.while_another_holds(lambda conn: repo.lock_balance(conn, fresh.project_id, MODE, "u"))
    async with locked, fresh.db.write() as conn:
        skipping = repo.lock_balance(conn, fresh.project_id, MODE, "u", skip_locked=True)
        assert await asyncio.wait_for(skipping, 10) is None  # a wait here would be the failure
        assert await repo.lock_balance(conn, fresh.project_id, MODE, "nobody") is None
    async with fresh.db.write() as conn:
        row = await repo.lock_balance(conn, fresh.project_id, MODE, "u", skip_locked=True)
    assert row is not None and row.balance == 0
