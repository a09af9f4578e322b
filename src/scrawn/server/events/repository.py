"""All SQL on ``events``: ingest's insert and its look-ups by idempotency key, the late window's question,
voids, the CLI's listings, ``explain``, and what other domains ask about a project's events. Rows leave as
the typed values of ``events/types.py``; the caller owns the transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, and_, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from scrawn.money import format_amount, from_micros, to_micros
from scrawn.server.db import bulk
from scrawn.server.db.rows import filtered, ids_matching, owned, project_deletes
from scrawn.server.db.schema import events, quarantined_events
from scrawn.server.db.sums import joined, split_sum
from scrawn.server.events.types import Billed, EventRecord, PricedEvent, VoidableEvent
from scrawn.server.ledger import batch_repository as ledger_batch
from scrawn.server.ledger.types import Moved
from scrawn.server.ledger.types import Scope as UserScope

CHUNK = 500  # keys per IN (…) list
PRICING_PAGE = 1000  # events per page of pricing_naming
EventKey = tuple[str, str, str]  # (project_id, mode, idempotency_key): unique per stored event


# Ingest ---------------------------------------------------------------------------------------------------


# The columns ingest writes, in the table's order (the void marks come later, by ``mark_voided``).
COLUMNS = tuple(c.name for c in events.c if c.name not in ("voided_at", "voided_by", "void_reason"))
EventRow = tuple[Any, ...]  # an ``events`` row as ingest inserts it, in COLUMNS order, amounts in micro-units
PROJECT, MODE, ID, KEY, FINGERPRINT = range(5)  # where the row's identity sits in it


def event_row(ev: PricedEvent, event_id: str, now: int, debit: int | None = None) -> EventRow:
    """The ``events`` row of a priced event stored as ``event_id`` at ``now`` (Unix ms); ``debit`` is
    ``ev.debit`` in micro-units when the caller has it already."""
    inp = ev.input
    ai = inp.ai
    typed = inp.typed
    pricing = ev.pricing
    amount = pricing.get("amount") if len(pricing) == 1 else None
    if isinstance(amount, str) and amount.lstrip("-").replace(".", "", 1).isdigit():
        text = f'{{"amount":"{amount}"}}'  # what json.dumps writes for a plain number's text, far cheaper
    else:
        text = json.dumps(pricing, sort_keys=True, separators=(",", ":"))
    micros = to_micros(ev.debit) if debit is None else debit
    head = (ev.project_id, ev.mode, event_id, ev.idempotency_key, inp.fingerprint, inp.event_type)
    when = (inp.user_id, inp.basic_usage_type, inp.reported_at, now, micros)
    if ai is None:
        return (
            *head, *when, None, None, None, None, None, None, None, None, None, None, inp.metadata,
            typed.name if typed else None,
            format_amount(typed.quantity) if typed else None,
            typed.product_ref if typed else None,
            text,
        )  # fmt: skip
    parts = ev.components
    return (
        *head, *when, ai.model, ai.provider, ai.input_tokens, ai.output_tokens, ai.input_cache_tokens,
        ai.output_cache_tokens, _micros(parts.get("input")), _micros(parts.get("output")),
        _micros(parts.get("inputCache")), _micros(parts.get("outputCache")), inp.metadata, None, None, None,
        text,
    )  # fmt: skip


def _micros(amount: Decimal | None) -> int | None:
    return None if amount is None else to_micros(amount)


async def insert_new(conn: AsyncConnection, rows: Sequence[EventRow]) -> set[EventKey]:
    """Insert the rows whose key (and id) is free, in one statement: ``ON CONFLICT DO NOTHING RETURNING``
    says which were new, so no look-up precedes it. Returns the keys inserted."""
    returned = await bulk.insert(
        conn,
        events,
        COLUMNS,
        rows,
        tail="ON CONFLICT DO NOTHING",
        returning="project_id, mode, idempotency_key",
    )
    return {(r[0], r[1], r[2]) for r in returned}


async def insert_new_with_usage(
    conn: AsyncConnection, rows: Sequence[EventRow], now: int, period: int
) -> tuple[set[EventKey], dict[UserScope, Moved]]:
    """PostgreSQL: ``insert_new`` and the usage posting of the events it inserted (their ledger entries and
    one balance move per user, ``ledger/batch_repository.post_usage_ctes``) in one statement, so a flush is
    one round trip and only the inserted keys and the few balance rows the ledger's rules still look at come
    back, as arrays. Returns the keys inserted and those rows."""
    columns, values = bulk.given(events, COLUMNS, rows)
    found: Any = (await conn.exec_driver_sql(_with_usage_sql(columns), (*values, now, period))).one()
    keys = set(zip(found[0] or (), found[1] or (), found[2] or (), strict=True))
    return keys, ledger_batch.flagged_rows(found[3])


@cache
def _with_usage_sql(columns: tuple[str, ...]) -> str:
    n = len(columns)
    inserted = (
        f"{bulk.pg_insert(events, columns)} ON CONFLICT DO NOTHING "
        "RETURNING project_id, mode, id, user_id, idempotency_key, debit, ingested_at"
    )
    usage = ledger_batch.post_usage_ctes("inserted", f"${n + 1}", f"${n + 2}")
    answer = (
        "array_agg(project_id), array_agg(mode), array_agg(idempotency_key), (SELECT rows::text FROM flagged)"
    )
    return f"WITH inserted AS ({inserted}), {usage} SELECT {answer} FROM inserted"  # noqa: S608 - from the schema


async def billed(conn: AsyncConnection, project_id: str, mode: str, keys: Sequence[str]) -> dict[str, Billed]:
    """Stored events by idempotency key."""
    found: dict[str, Billed] = {}
    for start in range(0, len(keys), CHUNK):
        rows = await conn.execute(
            select(
                events.c.idempotency_key,
                events.c.id,
                events.c.fingerprint,
                events.c.ingested_at,
                events.c.debit,
            ).where(
                events.c.project_id == project_id,
                events.c.mode == mode,
                events.c.idempotency_key.in_(keys[start : start + CHUNK]),
            )
        )
        for r in rows:
            found[r.idempotency_key] = Billed(r.id, r.fingerprint, r.ingested_at, r.debit)
    return found


async def billed_rows(conn: AsyncConnection, rows: Sequence[EventRow]) -> dict[EventKey, Billed]:
    """The stored events holding the keys of ``rows`` (rows ``insert_new`` did not insert), by key.

    On PostgreSQL a SELECT by key is planned on statistics, and on a table never analyzed (autovacuum off)
    the planner walks another ``(project_id, mode, …)`` index through the whole project. So the rows are
    offered again with ``ON CONFLICT (the key) DO UPDATE … RETURNING``: the conflict check probes the unique
    key's index, one probe per row, with no planner in the way. The no-op update (a HOT update: no index
    changes) only serves to return the stored row. A row whose key is free (it lost on its event id) would
    be inserted here: it gets a fresh id, and a savepoint takes it back. SQLite plans ``key IN (…)`` on the
    unique index whatever it knows, so it reads."""
    if not rows:
        return {}
    if conn.dialect.name != "postgresql":
        by_scope: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            by_scope.setdefault((row[PROJECT], row[MODE]), []).append(row[KEY])
        return {
            (project_id, mode, key): known
            for (project_id, mode), keys in by_scope.items()
            for key, known in (await billed(conn, project_id, mode, keys)).items()
        }
    # Sorted: concurrent flushes lock the rows they meet in one order, never deadlocking on each other.
    offered = sorted(((*row[:ID], str(uuid.uuid4()), *row[ID + 1 :]) for row in rows), key=_row_key)
    savepoint = await conn.begin_nested()
    # Setting a column to its stored value: the update changes nothing it returns.
    found = await bulk.insert(
        conn,
        events,
        COLUMNS,
        offered,
        tail="ON CONFLICT (project_id, mode, idempotency_key) DO UPDATE SET fingerprint = events.fingerprint",
        returning="project_id, mode, idempotency_key, id, fingerprint, ingested_at, debit, xmax = 0",
    )
    if any(r[7] for r in found):
        await savepoint.rollback()
    else:
        await savepoint.commit()
    return {(r[0], r[1], r[2]): Billed(r[3], r[4], r[5], from_micros(r[6])) for r in found if not r[7]}


def _row_key(row: EventRow) -> EventKey:
    return (row[PROJECT], row[MODE], row[KEY])


async def known_keys(conn: AsyncConnection, project_id: str, mode: str, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` an event holds, stored or kept in the quarantine (both tables are this domain's)."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for table in (events, quarantined_events):
        for start in range(0, len(wanted), CHUNK):
            rows = await conn.execute(
                select(table.c.idempotency_key).where(
                    table.c.project_id == project_id,
                    table.c.mode == mode,
                    table.c.idempotency_key.in_(wanted[start : start + CHUNK]),
                )
            )
            found.update(r.idempotency_key for r in rows)
    return found


# Voids ----------------------------------------------------------------------------------------------------


async def lock_for_void(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    event_id: str | None = None,
    idempotency_key: str | None = None,
) -> VoidableEvent | None:
    """The event (by id, else by key), locked for the rest of the transaction (``FOR UPDATE`` on PostgreSQL;
    SQLite's write transactions are serialized already, and SQLAlchemy leaves the clause out there)."""
    where = [events.c.project_id == project_id, events.c.mode == mode]
    if event_id is not None:
        where.append(events.c.id == event_id)
    else:
        where.append(events.c.idempotency_key == idempotency_key)
    stmt = select(
        events.c.id,
        events.c.idempotency_key,
        events.c.user_id,
        events.c.debit,
        events.c.ingested_at,
        events.c.voided_at,
        events.c.voided_by,
        events.c.void_reason,
    ).where(*where)
    row = (await conn.execute(stmt.with_for_update())).first()
    return None if row is None else VoidableEvent(**row._mapping)


async def mark_voided(
    conn: AsyncConnection, project_id: str, mode: str, event_id: str, *, by: str, reason: str, now: int
) -> bool:
    """Set the void marks once: False when the event was voided already (a compare-and-set)."""
    done = await conn.execute(
        update(events)
        .where(*owned(events, project_id, mode, id=event_id), events.c.voided_at.is_(None))
        .values(voided_at=now, voided_by=by, void_reason=reason)
    )
    return bool(done.rowcount == 1)


# Listings and questions -----------------------------------------------------------------------------------


async def any_event(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project holds any event (amounts in its currency)."""
    found = await conn.scalar(select(events.c.project_id).where(events.c.project_id == project_id).limit(1))
    return found is not None


def _record(row: Any) -> EventRecord:
    return EventRecord(**row._mapping)


async def get(conn: AsyncConnection, project_id: str, mode: str, event_id: str) -> EventRecord | None:
    """One event (``explain``)."""
    row = (
        await conn.execute(
            select(events).where(
                events.c.project_id == project_id, events.c.mode == mode, events.c.id == event_id
            )
        )
    ).first()
    return None if row is None else _record(row)


@dataclass(frozen=True)
class Scope:
    """Which events a listing reads: one project and mode, optionally one user and an ingest-time range
    (``since`` inclusive, ``before`` exclusive, Unix ms)."""

    project_id: str
    mode: str
    user_id: str | None = None
    since: int | None = None
    before: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        where = [*owned(events, self.project_id, self.mode), *filtered(events, user_id=self.user_id)]
        if self.since is not None:
            where.append(events.c.ingested_at >= self.since)
        if self.before is not None:
            where.append(events.c.ingested_at < self.before)
        return where


def _after(at: int, event_id: str) -> ColumnElement[bool]:
    """Strictly after ``(at, event_id)`` in ``(ingested_at, id)`` order: events sharing a millisecond are
    neither repeated nor skipped across pages."""
    return or_(events.c.ingested_at > at, and_(events.c.ingested_at == at, events.c.id > event_id))


async def newest(conn: AsyncConnection, scope: Scope, limit: int) -> list[EventRecord]:
    """The newest ``limit`` events, newest first."""
    stmt = select(events).where(*scope.where()).order_by(events.c.ingested_at.desc(), events.c.id.desc())
    return [_record(r) for r in await conn.execute(stmt.limit(limit))]


async def ingested_ids(conn: AsyncConnection, scope: Scope) -> dict[str, int]:
    """Event id → ingested_at of every event in scope."""
    rows = await conn.execute(select(events.c.id, events.c.ingested_at).where(*scope.where()))
    return {r.id: r.ingested_at for r in rows}


async def pages(conn: AsyncConnection, scope: Scope, page_size: int) -> AsyncIterator[list[EventRecord]]:
    """Every matching event, oldest first, one bounded query at a time (keyset pagination)."""
    where = scope.where()
    cursor: tuple[int, str] | None = None
    while True:
        stmt = select(events).where(*where)
        if cursor is not None:
            stmt = stmt.where(_after(*cursor))
        ordered = stmt.order_by(events.c.ingested_at, events.c.id).limit(page_size)
        page = [_record(r) for r in await conn.execute(ordered)]
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        cursor = (page[-1].ingested_at, page[-1].id)


async def pricing_naming(conn: AsyncConnection, project_id: str, since: int, text: str) -> AsyncIterator[str]:
    """The recorded pricing (JSON text) of the project's events (both modes) ingested at or after ``since``
    whose pricing contains ``text``; a page at a time (keyset on ``ix_events_ingested``: a server-side
    cursor would need a transaction, and reads run in autocommit)."""
    for mode in ("live", "test"):
        cursor: tuple[int, str] | None = None
        while True:
            stmt = select(events.c.ingested_at, events.c.id, events.c.pricing).where(
                events.c.project_id == project_id,
                events.c.mode == mode,
                events.c.ingested_at >= since,
                events.c.pricing.contains(text, autoescape=True),
            )
            if cursor is not None:
                stmt = stmt.where(_after(*cursor))
            page = (
                await conn.execute(stmt.order_by(events.c.ingested_at, events.c.id).limit(PRICING_PAGE))
            ).all()
            for row in page:
                yield row.pricing
            if len(page) < PRICING_PAGE:
                break
            cursor = (page[-1].ingested_at, page[-1].id)


async def listing(
    conn: AsyncConnection,
    scope: Scope,
    *,
    event_type: str | None,
    model: str | None = None,
    tag: str | None = None,
    voided: bool | None,
    size: int,
    cursor: tuple[int, str] | None,
    floor: tuple[int, str] | None = None,
) -> list[EventRecord]:
    """Up to ``size + 1`` events newest first, strictly before the ``(ingested_at, id)`` cursor (the
    dashboard's keyset pages), filtered by type, model, whether they were voided and a tag name their
    recorded pricing holds (``"NAME"`` in its JSON: the caller checks it is the tag and not an expression
    of the same name, with ``pricing.references.priced_with``).

    ``floor`` (from ``window_end``) stops the read at that event, inclusive: the voided and tag filters have
    no index, and a rare match must not read every event of the project. The bound is on
    ``ix_events_ingested`` / ``ix_events_user``, so the read is one bounded range of the index."""
    where = _listed(scope, event_type, model, cursor)
    if tag:
        where.append(events.c.pricing.contains(f'"{tag}"', autoescape=True))
    if voided is not None:
        where.append(events.c.voided_at.is_not(None) if voided else events.c.voided_at.is_(None))
    if floor is not None:
        at, event_id = floor
        # The plain bound too: an index range can use it, not the OR that breaks ties by id.
        where.append(events.c.ingested_at >= at)
        where.append(
            or_(events.c.ingested_at > at, and_(events.c.ingested_at == at, events.c.id >= event_id))
        )
    stmt = select(events).where(*where).order_by(*_NEWEST).limit(size + 1)
    return [_record(r) for r in await conn.execute(stmt)]


_NEWEST = (events.c.ingested_at.desc(), events.c.id.desc())


def _listed(
    scope: Scope, event_type: str | None, model: str | None, cursor: tuple[int, str] | None
) -> list[ColumnElement[bool]]:
    where = scope.where()
    if event_type:
        where.append(events.c.event_type == event_type)
    if model:
        where.append(events.c.model == model)
    if cursor is not None:
        at, event_id = cursor
        where.append(events.c.ingested_at <= at)
        where.append(or_(events.c.ingested_at < at, and_(events.c.ingested_at == at, events.c.id < event_id)))
    return where


async def window_end(
    conn: AsyncConnection,
    scope: Scope,
    *,
    event_type: str | None,
    model: str | None,
    cursor: tuple[int, str] | None,
    scan: int,
) -> tuple[int, str] | None:
    """The ``(ingested_at, id)`` of the ``scan``-th event the other filters select after ``cursor`` (the
    ``floor`` of a bounded ``listing``); None when there are fewer."""
    stmt = (
        select(events.c.ingested_at, events.c.id)
        .where(*_listed(scope, event_type, model, cursor))
        .order_by(*_NEWEST)
        .offset(scan - 1)
        .limit(1)
    )
    found = (await conn.execute(stmt)).first()
    return (int(found[0]), str(found[1])) if found else None


@dataclass(frozen=True)
class Bucket:
    start: int  # Unix ms
    events: int
    debit_micros: int  # billed, voided events left out


async def buckets(conn: AsyncConnection, scope: Scope, width_ms: int, origin: int = 0) -> list[Bucket]:
    """Events and billed usage per ``width_ms`` bucket of ingest time counted from ``origin`` (Unix ms, at
    or before ``scope.since``), oldest first."""
    # Inlined: PostgreSQL groups by an expression only when its parameters are the select's own.
    width = literal_column(str(int(width_ms)), BigInteger)
    start = (
        events.c.ingested_at - (events.c.ingested_at - literal_column(str(int(origin)), BigInteger)) % width
    )
    stmt = (
        select(start.label("start"), func.count().label("n"), *split_sum(events.c.debit, "debit"))
        .where(*scope.where(), events.c.voided_at.is_(None))
        .group_by(start)
        .order_by(start)
    )
    return [Bucket(int(r.start), int(r.n), joined(r, "debit") or 0) for r in await conn.execute(stmt)]


async def ids_matching_prefix(conn: AsyncConnection, project_id: str, mode: str, given: str) -> list[str]:
    """The mode's event ids equal to ``given`` or starting with it (``db.rows.ids_matching``)."""
    where = (events.c.project_id == project_id, events.c.mode == mode)
    return list(await conn.scalars(ids_matching(events.c.id, given, *where)))


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's events; how many rows went (``scrawn projects delete``)."""
    deletes = project_deletes(project_id, events)
    return sum([(await conn.execute(d)).rowcount for d in deletes])


# One user's billed events summed per span of time and per model (the customer portal's figures), always
# scoped to one project, mode and user: ``ix_events_user`` serves every query.


@dataclass(frozen=True)
class UsageTotal:
    key: str  # a span's start (Unix ms) as text, or a model ("" for events without one)
    amount: Decimal  # minor units of the project's currency
    events: int


def _grouped(project_id: str, mode: str, user_id: str, since: int, key: Any) -> Any:
    return (
        select(key.label("key"), func.count().label("events"), *split_sum(events.c.debit, "debit"))
        .where(
            events.c.project_id == project_id,
            events.c.mode == mode,
            events.c.user_id == user_id,
            events.c.ingested_at >= since,
            events.c.voided_at.is_(None),
        )
        .group_by(key)
    )


def _totals(rows: Any) -> list[UsageTotal]:
    return [UsageTotal(str(r.key), from_micros(joined(r, "debit") or 0), int(r.events)) for r in rows]


async def usage_by_span(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, since: int, width: int
) -> list[UsageTotal]:
    """Billed events since ``since`` (Unix ms) per ``width`` ms counted from it, oldest first; the key is
    the span's start (local days: ``usage/series.py`` picks a width every day boundary is a multiple of)."""
    # Inlined: PostgreSQL groups by an expression only when its parameters are the select's own.
    origin, span = (literal_column(str(int(v)), BigInteger) for v in (since, width))
    start = events.c.ingested_at - (events.c.ingested_at - origin) % span
    rows = await conn.execute(_grouped(project_id, mode, user_id, since, start).order_by(start))
    return _totals(rows)


async def usage_by_model(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, since: int
) -> list[UsageTotal]:
    """Billed events since ``since`` per model ("" for events that name none)."""
    model = func.coalesce(events.c.model, "")
    return _totals(await conn.execute(_grouped(project_id, mode, user_id, since, model)))
