"""Write a batch of priced events exactly once: the events, their ledger debits and the users'
balance rows, in the caller's transaction (DESIGN §5)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, case, literal, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._codes import INVALID_DATA
from scrawn.errors import AlreadyExistsError, OutOfRangeError, ScrawnError
from scrawn.money import MAX_MICROS, format_amount, to_micros
from scrawn.server.db.engine import dialect_insert, now_ms
from scrawn.server.db.schema import balances, events, ledger_entries
from scrawn.server.events.intake import EventInput
from scrawn.server.wallets import lots


@dataclass(frozen=True)
class PricedEvent:
    project_id: str
    mode: str
    input: EventInput
    idempotency_key: str
    debit: Decimal  # the total; Σ components when the event has components
    components: dict[str, Decimal | None]  # AI events: by component; rounded to micro-units already
    pricing: dict[str, Any]


@dataclass(frozen=True)
class Stored:
    event_id: str
    idempotency_key: str
    ingested_at: int  # Unix ms
    duplicate: bool
    debit: Decimal  # what the stored event was charged


Outcome = Stored | ScrawnError


async def store_batch(conn: AsyncConnection, batch: Sequence[PricedEvent]) -> list[Outcome]:
    now = now_ms()
    results: list[Outcome | None] = [None] * len(batch)
    first: dict[tuple[str, str, str], int] = {}
    fresh: list[int] = []
    for i, ev in enumerate(batch):
        key = (ev.project_id, ev.mode, ev.idempotency_key)
        if key in first:
            continue  # a repeat inside the batch: resolved against the first below
        first[key] = i
        fresh.append(i)

    # No look-up first: INSERT … ON CONFLICT DO NOTHING RETURNING says which keys are new, and only the
    # others (retries, races with another process) are read back below.
    stored: dict[tuple[str, str, str], tuple[str, str, int, Decimal]] = {}
    # A debit that would overflow its user's balance row is refused alone, never failing the whole flush.
    refused = await _beyond_balance_range(conn, batch, fresh)
    rows = []
    ids: dict[int, str] = {}
    for i in fresh:
        ev = batch[i]
        if (ev.project_id, ev.mode, ev.idempotency_key) in stored or i in refused:
            continue
        ids[i] = ev.input.event_id or str(uuid.uuid4())
        rows.append(_event_row(ev, ids[i], now))

    inserted: set[tuple[str, str, str]] = set()
    if rows:
        stmt = dialect_insert(conn, events).on_conflict_do_nothing()
        returned = await conn.execute(
            stmt.returning(events.c.project_id, events.c.mode, events.c.idempotency_key), rows
        )
        inserted = {(r.project_id, r.mode, r.idempotency_key) for r in returned}
        lost = [
            i for i in ids if (batch[i].project_id, batch[i].mode, batch[i].idempotency_key) not in inserted
        ]
        if lost:  # a concurrent writer (another process) or an eventId collision
            stored |= await _existing(conn, [batch[i] for i in lost])

    new_events = [
        i for i in ids if (batch[i].project_id, batch[i].mode, batch[i].idempotency_key) in inserted
    ]
    await _post_ledger(conn, [(batch[i], ids[i]) for i in new_events], now)

    for i, ev in enumerate(batch):
        key = (ev.project_id, ev.mode, ev.idempotency_key)
        owner = first[key]
        if key in inserted:
            duplicate = owner != i
            if duplicate and batch[owner].input.fingerprint != ev.input.fingerprint:
                results[i] = conflict()
            else:
                results[i] = Stored(ids[owner], ev.idempotency_key, now, duplicate, batch[owner].debit)
        elif key in stored:
            event_id, fingerprint, ingested_at, debit = stored[key]
            results[i] = (
                Stored(event_id, ev.idempotency_key, ingested_at, True, debit)
                if fingerprint == ev.input.fingerprint
                else conflict()
            )
        elif owner in refused:
            results[i] = refused[owner]
        else:
            results[i] = AlreadyExistsError(
                f"eventId: an event with id {ev.input.event_id} already exists", field="eventId"
            )
    return [r for r in results if r is not None]


def conflict() -> AlreadyExistsError:
    return AlreadyExistsError(
        "idempotencyKey: already used for an event with different content", field="idempotencyKey"
    )


class BalanceOutOfRange(OutOfRangeError):
    """A debit that would take a user's balance past what BIGINT micro-units hold."""

    stream_code = INVALID_DATA


async def _beyond_balance_range(
    conn: AsyncConnection, batch: Sequence[PricedEvent], candidates: Sequence[int]
) -> dict[int, ScrawnError]:
    """The candidates (in order) whose debit would overflow the user's balance row. Refused one by one:
    otherwise SQLite silently turns the balance into a float and PostgreSQL fails the whole flush."""
    by_scope: dict[tuple[str, str], set[str]] = defaultdict(set)
    for i in candidates:
        by_scope[(batch[i].project_id, batch[i].mode)].add(batch[i].input.user_id)
    balance: dict[tuple[str, str, str], int] = {}
    for (project_id, mode), user_set in by_scope.items():
        users = sorted(user_set)
        for start in range(0, len(users), 500):
            rows = await conn.execute(
                select(balances.c.user_id, type_coerce(balances.c.balance, BigInteger).label("micros")).where(
                    balances.c.project_id == project_id,
                    balances.c.mode == mode,
                    balances.c.user_id.in_(users[start : start + 500]),
                )
            )
            for r in rows:
                balance[(project_id, mode, r.user_id)] = int(r.micros)
    refused: dict[int, ScrawnError] = {}
    for i in candidates:
        ev = batch[i]
        user = (ev.project_id, ev.mode, ev.input.user_id)
        after = balance.get(user, 0) - to_micros(ev.debit)
        if -MAX_MICROS <= after <= MAX_MICROS:
            balance[user] = after
        else:
            refused[i] = BalanceOutOfRange(
                "debit: this user's balance would pass the storable range; the event was not recorded",
                field="debit",
            )
    return refused


async def _existing(
    conn: AsyncConnection, batch: Sequence[PricedEvent]
) -> dict[tuple[str, str, str], tuple[str, str, int, Decimal]]:
    by_scope: dict[tuple[str, str], list[str]] = defaultdict(list)
    for ev in batch:
        by_scope[(ev.project_id, ev.mode)].append(ev.idempotency_key)
    found: dict[tuple[str, str, str], tuple[str, str, int, Decimal]] = {}
    for (project_id, mode), keys in by_scope.items():
        for key, known in (await existing_events(conn, project_id, mode, keys)).items():
            found[(project_id, mode, key)] = known
    return found


async def existing_events(
    conn: AsyncConnection, project_id: str, mode: str, keys: Sequence[str]
) -> dict[str, tuple[str, str, int, Decimal]]:
    """Stored events by idempotency key: (event id, fingerprint, ingested_at, debit)."""
    found: dict[str, tuple[str, str, int, Decimal]] = {}
    for start in range(0, len(keys), 500):
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
                events.c.idempotency_key.in_(keys[start : start + 500]),
            )
        )
        for r in rows:
            found[r.idempotency_key] = (r.id, r.fingerprint, r.ingested_at, r.debit)
    return found


def _event_row(ev: PricedEvent, event_id: str, now: int) -> dict[str, Any]:
    inp = ev.input
    ai = inp.ai
    row: dict[str, Any] = {
        "project_id": ev.project_id,
        "mode": ev.mode,
        "id": event_id,
        "idempotency_key": ev.idempotency_key,
        "fingerprint": inp.fingerprint,
        "event_type": inp.event_type,
        "user_id": inp.user_id,
        "basic_usage_type": inp.basic_usage_type,
        "reported_at": inp.reported_at,
        "ingested_at": now,
        "debit": ev.debit,
        "metadata": inp.metadata,
        "pricing": json.dumps(ev.pricing, sort_keys=True, separators=(",", ":")),
        "model": ai.model if ai else None,
        "provider": ai.provider if ai else None,
        "input_tokens": ai.input_tokens if ai else None,
        "output_tokens": ai.output_tokens if ai else None,
        "input_cache_tokens": ai.input_cache_tokens if ai else None,
        "output_cache_tokens": ai.output_cache_tokens if ai else None,
        "input_debit": ev.components.get("input"),
        "output_debit": ev.components.get("output"),
        "input_cache_debit": ev.components.get("inputCache"),
        "output_cache_debit": ev.components.get("outputCache"),
        "name": inp.typed.name if inp.typed else None,
        "quantity": format_amount(inp.typed.quantity) if inp.typed else None,
        "product_ref": inp.typed.product_ref if inp.typed else None,
    }
    return row


async def _post_ledger(conn: AsyncConnection, new: Sequence[tuple[PricedEvent, str]], now: int) -> None:
    """One usage debit per new event, and each user's balance row moved by the same amounts."""
    if not new:
        return
    await conn.execute(
        ledger_entries.insert(),
        [
            {
                "project_id": ev.project_id,
                "mode": ev.mode,
                "id": str(uuid.uuid4()),
                "user_id": ev.input.user_id,
                "kind": "usage",
                "amount": -ev.debit,
                "event_id": event_id,
                "created_at": now,
            }
            for ev, event_id in new
        ],
    )
    deltas: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for ev, _ in new:
        deltas[(ev.project_id, ev.mode, ev.input.user_id)] -= ev.debit
    await apply_balance_deltas(conn, deltas, now, spend={k: -d for k, d in deltas.items()})


async def apply_balance_deltas(
    conn: AsyncConnection,
    deltas: dict[tuple[str, str, str], Decimal],
    now: int,
    *,
    spend: dict[tuple[str, str, str], Decimal] | None = None,
) -> None:
    """Move balance rows, locking users in sorted order so concurrent batches cannot deadlock. In the same
    transaction (docs/wallets.md): a negative delta consumes the user's credit lots soonest-expiring first,
    after expiring those already due; ``spend`` counts towards the monthly spend cap; and a fall of
    available below the user's low-balance threshold is recorded as a ``balance.low`` alert."""
    period = lots.period_of(now)
    stmt = dialect_insert(conn, balances)
    stmt = stmt.on_conflict_do_update(
        index_elements=[balances.c.project_id, balances.c.mode, balances.c.user_id],
        set_={
            "balance": balances.c.balance + stmt.excluded.balance,
            "updated_at": stmt.excluded.updated_at,
            "spent": _spent_after(stmt),
            "spend_period": stmt.excluded.spend_period,
        },
    ).returning(
        balances.c.project_id,
        balances.c.mode,
        balances.c.user_id,
        balances.c.balance,
        balances.c.held,
        balances.c.low_balance_threshold,
    )
    ordered = sorted(deltas.items())
    values = [
        {
            "project_id": project_id,
            "mode": mode,
            "user_id": user_id,
            "balance": delta,
            "updated_at": now,
            "spent": (spend or {}).get((project_id, mode, user_id), Decimal(0)),
            "spend_period": period,
        }
        for (project_id, mode, user_id), delta in ordered
    ]
    # One multi-row statement for all users, its rows in sorted order (the order PostgreSQL locks them in).
    # RETURNING rows are matched by key: asking SQLAlchemy to keep their order makes it go row by row.
    returned = await conn.execute(stmt, values)
    after: dict[tuple[str, str, str], Any] = {(r.project_id, r.mode, r.user_id): r for r in returned}
    expired = await _settle_lots(conn, deltas, after, now)
    for key, delta in sorted(deltas.items()):
        row, gone = after[key], expired.get(key, Decimal(0))
        if gone:
            await conn.execute(
                update(balances)
                .where(
                    balances.c.project_id == key[0], balances.c.mode == key[1], balances.c.user_id == key[2]
                )
                .values(balance=row.balance - gone)
            )
        before = row.balance - delta - row.held
        if lots.crossed_below(row.low_balance_threshold, before, row.balance - gone - row.held):
            await lots.record_low_balance(
                conn,
                key[0],
                key[1],
                key[2],
                threshold=row.low_balance_threshold,
                balance=row.balance - gone,
                available=row.balance - gone - row.held,
                now=now,
            )


def _spent_after(stmt: Any) -> Any:
    """``spent`` plus this batch's spend in the same month (else the batch's spend alone), saturating at
    the BIGINT maximum instead of overflowing (a float on SQLite, a failed flush on PostgreSQL): it only
    counts towards a spend cap, which is at most that. CASE tests in order, so nothing overflows."""
    spent, added = type_coerce(balances.c.spent, BigInteger), type_coerce(stmt.excluded.spent, BigInteger)
    ceiling = literal(MAX_MICROS, BigInteger)
    return type_coerce(
        case(
            (
                balances.c.spend_period == stmt.excluded.spend_period,
                case((added <= 0, spent + added), (spent > ceiling - added, ceiling), else_=spent + added),
            ),
            else_=added,
        ),
        BigInteger,
    )


async def _settle_lots(
    conn: AsyncConnection, deltas: dict[tuple[str, str, str], Decimal], after: dict[Any, Any], now: int
) -> dict[tuple[str, str, str], Decimal]:
    """Debited users' lots: expire what was due before these debits, then consume them. Returns what expired
    per user (their balance rows still have to move by it)."""
    by_scope: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (project_id, mode, user_id), delta in deltas.items():
        if delta < 0:
            by_scope[(project_id, mode)].append(user_id)
    expired: dict[tuple[str, str, str], Decimal] = {}
    for (project_id, mode), users in sorted(by_scope.items()):
        found = await lots.live_lots(conn, project_id, mode, users)
        for user_id in sorted(found):
            key = (project_id, mode, user_id)
            row, delta = after[key], deltas[key]
            gone, remaining = await lots.expire_lots(
                conn, project_id, mode, user_id, found[user_id], row.balance - delta, row.held, now
            )
            await lots.consume_lots(conn, project_id, mode, remaining, -delta)
            if gone:
                expired[key] = gone
    return expired
