"""The batch path stores exactly what the single-event path stores. The same 10,000 random events (amounts,
tags, inline and named expressions, AI items priced by their debits or the model book, typed events,
duplicates, conflicting repeats, taken event ids, events the configuration cannot price, events pricing
refuses, and items intake refuses) go into two fresh databases of the same kind: one event per call into
the first, calls of 1,000 into the second. Every answer, stored event, ledger entry, balance row, credit
lot, kept event and rollup total must be the same, apart from what names the moment of the call
(``ingested_at``, generated ids)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as pb
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn.errors import ScrawnError
from scrawn.server.clock import now_ms
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.db.schema import balances, credit_lots, events, ledger_entries, quarantined_events
from scrawn.server.events import rollup_repository
from scrawn.server.events.committer import GroupCommitter
from scrawn.server.events.intake import EventInput, EventInvalid, from_stream_item, from_tracked
from scrawn.server.events.quarantine.service import KeptForRepricing
from scrawn.server.events.service import EventService
from scrawn.server.events.types import Outcome, Stored
from scrawn.server.keys.types import Caller
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import LedgerEntry
from scrawn.server.pricing import service as catalog
from scrawn.server.projects.service import create_project
from tests.conftest import drop_pg_database, new_pg_database
from tests.server.events.inputs import MODE

D = Decimal
EVENTS = 10_000
BATCH = 1_000
CALLERS = 64  # concurrent single-event calls
USERS = 40
TAGS = {"A": D("0.37"), "B": D("1.234567"), "C": D("250")}
EXPRESSIONS = {"FEE": "add(tag(A), 0.0000015)", "PER_TOKEN": "div(tag(B), 3)"}
EVENT_PRICES = {"doc.page": "mul(quantity(), tag(B))", "doc.free": "mul(quantity(), 0)"}
INLINE = [
    "mul(tag(A), 3)",
    "div(tag(B), 7)",  # below a micro-unit: rounded once, half-even
    "expr(FEE)",
    "add(0.0000005, 0.0000015)",
    "div(1, 0)",  # refused: division by zero
    "sub(0, 1)",  # refused: negative
    "expr(NOT_YET)",  # kept: no such expression
    "mul(tag(MISSING), 2)",  # kept: no such tag
]
AI_DEBITS = [None, "amount", "tag", "expr"]
AI_EXPRS = ["mul(inputTokens(), expr(PER_TOKEN))", "div(outputTokens(), 1000)", "mul(inputCacheTokens(), 0)"]


class Corpus:
    """Random wire items, built from one seed, with repeats of earlier ones mixed in."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = now_ms() // 1000
        self.sent: list[pb.StreamEventRequest | usage_pb.TrackedEvent] = []
        self.event_ids: list[str] = []

    def items(self, n: int) -> list[pb.StreamEventRequest | usage_pb.TrackedEvent]:
        for i in range(n):
            self.sent.append(self._next(i))
        return self.sent

    def _next(self, i: int) -> pb.StreamEventRequest | usage_pb.TrackedEvent:
        rng = self.rng
        roll = rng.random()
        if self.sent and roll < 0.10:  # the same request again: a duplicate (or the same refusal)
            return rng.choice(self.sent)
        if self.sent and roll < 0.13:  # its key again with other content: a conflict
            again = _copy(rng.choice(self.sent))
            again.userId = f"u{rng.randrange(USERS)}-other"
            return again
        key = f"k{i}"
        user = f"u{rng.randrange(USERS)}"
        at = self.now - rng.randrange(3 * 86_400)
        event_id = ""
        if rng.random() < 0.06:
            if self.event_ids and rng.random() < 0.2:  # another key's event id: refused as taken
                event_id = rng.choice(self.event_ids)
            else:
                event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                self.event_ids.append(event_id)
        kind = rng.random()
        if kind < 0.08:
            return self._typed(key, user, at, event_id)
        if kind < 0.30:
            return self._ai(key, user, at, event_id)
        usage = pb.BasicUsage(basicUsageType=rng.choice([pb.RAW, pb.MIDDLEWARE_CALL]))
        debit = rng.random()
        if debit < 0.45:
            usage.amount = rng.randrange(0, 100_000)
        elif debit < 0.65:
            usage.tag = rng.choice([*TAGS, "MISSING"]) if rng.random() < 0.97 else "lower_case"  # refused
        else:
            usage.expr = rng.choice(INLINE)
        if rng.random() < 0.05:
            usage.amount = -rng.randrange(1, 100)  # refused by intake
        if rng.random() < 0.1:
            usage.metadata = f'{{"n": {i}}}'
        user = user if rng.random() > 0.01 else ""  # refused by intake
        return pb.StreamEventRequest(
            type=pb.BASIC_USAGE,
            userId=user,
            reportedTimestamp=at,
            basicUsage=usage,
            eventId=event_id,
            idempotencyKey=key,
        )

    def _ai(self, key: str, user: str, at: int, event_id: str) -> pb.StreamEventRequest:
        rng = self.rng
        ai = pb.AITokenUsage(
            model=rng.choice(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "no-such-model-9"]),
            inputTokens=rng.randrange(0, 50_000),
            outputTokens=rng.randrange(0, 8_000),
            inputCacheTokens=rng.randrange(0, 2_000),
            outputCacheTokens=rng.randrange(0, 500),
        )
        if rng.random() < 0.5:
            ai.provider = rng.choice(["openai", "anthropic"])
        for part in ("input", "output", "inputCache", "outputCache"):
            match rng.choice(AI_DEBITS):
                case "amount":
                    setattr(ai, f"{part}Amount", rng.randrange(0, 5_000))
                case "tag":
                    setattr(ai, f"{part}Tag", rng.choice([*TAGS, "MISSING"]))
                case "expr":
                    setattr(ai, f"{part}Expr", rng.choice(AI_EXPRS))
        return pb.StreamEventRequest(
            type=pb.AI_TOKEN_USAGE,
            userId=user,
            reportedTimestamp=at,
            aiTokenUsage=ai,
            eventId=event_id,
            idempotencyKey=key,
        )

    def _typed(self, key: str, user: str, at: int, event_id: str) -> usage_pb.TrackedEvent:
        rng = self.rng
        quantity = rng.choice(["", "1", "2.5", "0.0000007", "1000000", "-1"])  # "-1" refused by intake
        return usage_pb.TrackedEvent(
            type=rng.choice([*EVENT_PRICES, "doc.unpriced"]),
            userId=user,
            quantity=quantity,
            productRef=rng.choice(["", "sku-1"]),
            idempotencyKey=key,
            eventId=event_id,
            timestamp=at,
        )


def _copy(item: Any) -> Any:
    copied = type(item)()
    copied.CopyFrom(item)
    return copied


def validated(items: list[Any]) -> tuple[list[EventInput], list[str]]:
    """The inputs intake accepts, and the refusals (the same whichever path follows: intake runs first)."""
    inputs, refused = [], []
    for item in items:
        try:
            inputs.append(
                from_tracked(item) if isinstance(item, usage_pb.TrackedEvent) else from_stream_item(item)
            )
        except EventInvalid as e:
            refused.append(f"{e.field}: {e.message}")
    return inputs, refused


@pytest.fixture
def second_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another fresh database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'batched.db'}"
        return
    url, name = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


async def configured(url: str, expires: int) -> tuple[Database, str]:
    """A migrated database with one project priced by TAGS, EXPRESSIONS and EVENT_PRICES, and credit lots
    for some users (so debits consume lots)."""
    db = Database(url)
    await migrate(db)
    async with db.write() as conn:
        project_id = await create_project(conn, "equivalence")
        for key, price in TAGS.items():
            await catalog.put_tag(conn, project_id, key, price)
        for name, text in EXPRESSIONS.items():
            await catalog.put_expression(conn, project_id, name, text)
        for name, text in EVENT_PRICES.items():
            await catalog.put_event_price(conn, project_id, name, text)
    for n in range(0, USERS, 3):
        async with db.write() as conn:
            grant = LedgerEntry(
                project_id,
                MODE,
                f"u{n}",
                "grant",
                D(5_000 * n + 7),
                idempotency_key=f"g{n}",
                expires_at=expires,
            )
            await ledger.post_keyed(conn, grant, require_available=False)
    return db, project_id


@pytest.fixture
async def databases(database_url: str, second_url: str) -> AsyncIterator[list[tuple[Database, str]]]:
    expires = now_ms() + 30 * 86_400_000  # the same lots in both
    made = [await configured(database_url, expires), await configured(second_url, expires)]
    try:
        yield made
    finally:
        for db, _ in made:
            await db.dispose()


def _answer(inp: EventInput, outcome: Outcome) -> tuple[Any, ...]:
    if isinstance(outcome, Stored):
        given = inp.event_id is not None
        return (
            "stored",
            outcome.idempotency_key,
            outcome.duplicate,
            outcome.debit,
            given and outcome.event_id,
        )
    if isinstance(outcome, KeptForRepricing):
        return ("kept", outcome.idempotency_key, outcome.field, outcome.message)
    assert isinstance(outcome, ScrawnError)
    return (type(outcome).__name__, outcome.stream_code, outcome.field, outcome.message)


async def ingest(db: Database, project_id: str, inputs: list[EventInput], size: int) -> list[tuple[Any, ...]]:
    """Ingest ``inputs`` in calls of ``size`` events, one call after another."""
    async with service_on(db) as service:
        caller = Caller(project_id, "key-1", "live", MODE)
        answers = []
        for start in range(0, len(inputs), size):
            chunk = inputs[start : start + size]
            outcomes = await service.ingest(caller, chunk)
            answers += [_answer(i, o) for i, o in zip(chunk, outcomes, strict=True)]
        return answers


async def ingest_singly(db: Database, project_id: str, inputs: list[EventInput]) -> list[tuple[Any, ...]]:
    """One event per call, as ``RegisterEvent`` sends them: up to CALLERS calls at once (group commit
    gathers them into flushes, as it does for concurrent callers), in order wherever order matters (an
    event waits for the earlier ones with its key or its event id)."""
    answers: list[tuple[Any, ...]] = [()] * len(inputs)
    last: dict[str, asyncio.Task[None]] = {}
    room = asyncio.Semaphore(CALLERS)
    async with service_on(db) as service:
        caller = Caller(project_id, "key-1", "live", MODE)

        async def call(i: int, after: list[asyncio.Task[None]]) -> None:
            for earlier in after:
                await earlier
            async with room:
                [outcome] = await service.ingest(caller, [inputs[i]])
            answers[i] = _answer(inputs[i], outcome)

        tasks = []
        for i, inp in enumerate(inputs):
            names = [f"key:{inp.idempotency_key}", *([f"id:{inp.event_id}"] if inp.event_id else [])]
            tasks.append(asyncio.create_task(call(i, [last[name] for name in names if name in last])))
            last |= dict.fromkeys(names, tasks[-1])
        await asyncio.gather(*tasks)
    return answers


@asynccontextmanager
async def service_on(db: Database) -> AsyncIterator[EventService]:
    committer = GroupCommitter(db)
    committer.start()
    try:
        yield EventService(db, committer)
    finally:
        await committer.close()


async def stored(db: Database, project_id: str, given_ids: set[str]) -> dict[str, Any]:
    """Everything ingest wrote, without what names the moment (ingested_at, generated ids); an event's id
    is kept when the request gave it."""
    async with db.read() as conn:
        event_rows = list(await conn.execute(select(events).where(events.c.project_id == project_id)))
        keys = {r.id: r.idempotency_key for r in event_rows}
        entries = await conn.execute(select(ledger_entries).where(ledger_entries.c.project_id == project_id))
        lots = await conn.execute(select(credit_lots).where(credit_lots.c.project_id == project_id))
        users = await conn.execute(select(balances).where(balances.c.project_id == project_id))
        kept = await conn.execute(
            select(quarantined_events).where(quarantined_events.c.project_id == project_id)
        )
        slots = (await rollup_repository.all_slots(conn, project_id)).values()
    return {
        "events": sorted(
            (*_without(r, "project_id", "ingested_at", "id"), r.id if r.id in given_ids else None)
            for r in event_rows
        ),
        "entries": sorted(
            (r.user_id, r.kind, r.amount, keys.get(r.event_id or ""), r.idempotency_key) for r in entries
        ),
        "balances": sorted(_without(r, "project_id", "updated_at") for r in users),
        "lots": sorted((r.user_id, r.amount, r.remaining, r.expired, r.expires_at) for r in lots),
        "kept": sorted(_without(r, "project_id", "id", "received_at") for r in kept),
        "rollup": [(sum(n for n, _ in slots), sum(m for _, m in slots))],
        "debits": [sum((r.debit for r in event_rows if r.voided_at is None), D(0))],
    }


def _without(row: Any, *names: str) -> tuple[Any, ...]:
    return tuple(v for k, v in row._mapping.items() if k not in names)


@pytest.mark.timeout(900)  # 10,000 single-event calls take minutes on a busy 2-core machine
async def test_batches_store_what_single_events_store(databases: list[tuple[Database, str]]) -> None:
    (single_db, single_project), (batch_db, batch_project) = databases
    corpus = Corpus(seed=20261203)
    inputs, refused = validated(corpus.items(EVENTS))

    one_by_one = await ingest_singly(single_db, single_project, inputs)
    batched = await ingest(batch_db, batch_project, inputs, BATCH)
    assert batched == one_by_one

    kinds = {a[0] for a in one_by_one} | {"duplicate" for a in one_by_one if a[0] == "stored" and a[2]}
    # The corpus exercises every answer, so the comparison above covers each of them.
    assert {"stored", "duplicate", "kept", "AlreadyExistsError", "PriceFailed"} <= kinds
    assert len(refused) > 100

    given = set(corpus.event_ids)
    single = await stored(single_db, single_project, given)
    batch = await stored(batch_db, batch_project, given)
    for table in single:
        assert batch[table] == single[table], table
    assert len(single["events"]) > 5_000 and len(single["kept"]) > 100 and single["lots"]
    # And the money adds up: each balance is its user's entries, the rollup the stored events' debits.
    owed: dict[str, Decimal] = {}
    for user, _, amount, _, _ in single["entries"]:
        owed[user] = owed.get(user, D(0)) + amount
    assert {r[1]: r[2] for r in single["balances"]} == owed
    [(count, micros)] = single["rollup"]
    assert (count, D(micros) / 1_000_000) == (len(single["events"]), single["debits"][0])
