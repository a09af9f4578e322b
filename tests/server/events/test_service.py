"""The events domain's rules on both databases, called directly: a batch stored exactly once (repeats,
retries, conflicting content, a taken event id) with one debit each; an unpriceable event kept, answered
the same on retry and billed once when repriced; a void credited back once; a late event refused unless it
is a retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from scrawn.errors import AlreadyExistsError, NotFoundError
from scrawn.server.clock import now_ms
from scrawn.server.events import void_service
from scrawn.server.events.batch import store_batch
from scrawn.server.events.committer import GroupCommitter
from scrawn.server.events.intake import EventInvalid
from scrawn.server.events.quarantine import service as quarantine
from scrawn.server.events.quarantine.service import KeptForRepricing
from scrawn.server.events.service import EventService
from scrawn.server.events.types import Stored
from scrawn.server.keys.types import Caller
from scrawn.server.ledger import service as ledger
from scrawn.server.pricing import service as catalog
from tests.server.events.inputs import MODE, basic, priced
from tests.server.fresh import Fresh

D = Decimal
DAY = 86_400


@pytest.fixture
async def events(fresh: Fresh) -> AsyncIterator[EventService]:
    committer = GroupCommitter(fresh.db)
    committer.start()
    try:
        yield EventService(fresh.db, committer)
    finally:
        await committer.close()


def caller(fresh: Fresh) -> Caller:
    return Caller(fresh.project_id, "key-1", "live", MODE)


async def balance(fresh: Fresh, user: str = "u1") -> Decimal:
    async with fresh.db.read() as conn:
        return (await ledger.read(conn, fresh.project_id, MODE, user)).balance


async def test_a_batch_stores_each_key_once_and_debits_once(fresh: Fresh) -> None:
    pid = fresh.project_id
    one, other = basic("u1", "k1", amount="2.5"), basic("u1", "k1", amount="9")
    batch = [
        priced(pid, one),
        priced(pid, one),
        priced(pid, other),
        priced(pid, basic("u2", "k2", amount="1")),
    ]
    async with fresh.db.write() as conn:
        first, repeat, conflict, second = await store_batch(conn, batch)
    assert isinstance(first, Stored) and not first.duplicate and first.debit == D("2.5")
    assert isinstance(repeat, Stored) and repeat.duplicate and repeat.event_id == first.event_id
    assert isinstance(conflict, AlreadyExistsError) and conflict.field == "idempotencyKey"
    assert isinstance(second, Stored) and not second.duplicate
    assert (await balance(fresh, "u1"), await balance(fresh, "u2")) == (D("-2.5"), D("-1"))

    async with fresh.db.write() as conn:  # a retry in a later flush: the stored answer, no second debit
        [retry] = await store_batch(conn, [priced(pid, one)])
    assert isinstance(retry, Stored) and retry.duplicate
    assert (retry.event_id, retry.ingested_at, retry.debit) == (first.event_id, first.ingested_at, D("2.5"))
    assert await balance(fresh, "u1") == D("-2.5")


async def test_an_event_id_taken_by_another_key_is_refused_alone(fresh: Fresh) -> None:
    pid = fresh.project_id
    event_id = "00000000-0000-4000-8000-000000000001"
    async with fresh.db.write() as conn:
        [ok] = await store_batch(conn, [priced(pid, basic("u1", "a", event_id=event_id))])
    async with fresh.db.write() as conn:
        taken, fine = await store_batch(
            conn, [priced(pid, basic("u1", "b", event_id=event_id)), priced(pid, basic("u1", "c"))]
        )
    assert isinstance(ok, Stored) and ok.event_id == event_id
    assert isinstance(taken, AlreadyExistsError) and taken.field == "eventId"
    assert isinstance(fine, Stored)
    assert await balance(fresh) == D("-3")  # "a" and "c", never "b"


async def test_an_unpriceable_event_is_kept_then_billed_once_when_repriced(
    fresh: Fresh, events: EventService
) -> None:
    pid, who = fresh.project_id, caller(fresh)
    kept = basic("u1", "later", tag="LATER")
    [first] = await events.ingest(who, [kept])
    [retry] = await events.ingest(who, [kept])
    [clash] = await events.ingest(who, [basic("u1", "later", tag="LATER", content="other content")])
    assert isinstance(first, KeptForRepricing) and first.field == "basicUsage.tag"
    assert isinstance(retry, KeptForRepricing) and retry.event_id == first.event_id
    assert isinstance(clash, AlreadyExistsError) and clash.field == "idempotencyKey"
    async with fresh.db.read() as conn:
        waiting = await quarantine.waiting(conn, pid, MODE, limit=10)
    assert (waiting.total, waiting.by_reason, [e.id for e in waiting.events]) == (
        1,
        {"tag_not_found": 1},
        [first.event_id],
    )

    still = await quarantine.reprice(fresh.db, pid, MODE)  # the tag is still missing: nothing billed
    assert (still.repriced, still.waiting, still.amount) == (0, 1, D(0))
    async with fresh.db.write() as conn:
        await catalog.put_tag(conn, pid, "LATER", D("2.5"))
    done = await quarantine.reprice(fresh.db, pid, MODE)
    again = await quarantine.reprice(fresh.db, pid, MODE)
    assert (done.repriced, done.waiting, done.amount) == (1, 0, D("2.5"))
    assert (again.repriced, again.amount) == (0, D(0))
    assert await balance(fresh) == D("-2.5")
    [after] = await events.ingest(who, [kept])  # the kept copy was billed under its key: now a duplicate
    assert isinstance(after, Stored) and after.duplicate and after.event_id == first.event_id


async def test_reprice_of_unknown_ids_names_the_field(fresh: Fresh) -> None:
    with pytest.raises(NotFoundError) as refused:
        await quarantine.reprice(fresh.db, fresh.project_id, MODE, ["no-such-id"])
    assert refused.value.field == "ids"


async def test_a_void_credits_the_debit_back_once(fresh: Fresh) -> None:
    pid = fresh.project_id
    async with fresh.db.write() as conn:
        [stored] = await store_batch(conn, [priced(pid, basic("u1", "k", amount="4.25"))])
    assert isinstance(stored, Stored)
    target = void_service.check_target("", "k")
    async with fresh.db.write() as conn:
        done = await void_service.void_event(conn, pid, MODE, target, "wrong", "key-1")
    async with fresh.db.write() as conn:
        again = await void_service.void_event(conn, pid, MODE, target, "twice", "key-2")
    assert (done.amount, done.already_voided, done.event_id) == (D("4.25"), False, stored.event_id)
    assert (again.already_voided, again.reversal_entry_id, again.reason, again.voided_by) == (
        True,
        done.reversal_entry_id,
        "wrong",
        "key-1",
    )
    assert await balance(fresh) == D(0)
    async with fresh.db.write() as conn:
        with pytest.raises(NotFoundError):
            await void_service.void_event(conn, pid, "test", target, "other mode", "key-1")


async def test_a_late_event_is_refused_unless_it_retries_a_stored_one(
    fresh: Fresh, events: EventService
) -> None:
    pid, who = fresh.project_id, caller(fresh)
    old = now_ms() // 1000 - 40 * DAY  # past the default 35-day window
    stored_late = basic("u1", "old-stored", reported_at=old)
    async with fresh.db.write() as conn:  # stored back when it was inside the window
        await store_batch(conn, [priced(pid, stored_late)])
    retry, refused, fresh_one = await events.ingest(
        who, [stored_late, basic("u1", "old-new", reported_at=old), basic("u1", "now")]
    )
    assert isinstance(retry, Stored) and retry.duplicate
    assert isinstance(refused, EventInvalid) and refused.field == "reportedTimestamp"
    assert "35 days" in refused.message
    assert isinstance(fresh_one, Stored) and not fresh_one.duplicate
    assert await balance(fresh) == D("-3")  # the stored one and "now"; the refused one never
