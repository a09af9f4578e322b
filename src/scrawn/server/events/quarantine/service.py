"""The quarantine (docs/pricing-safety.md#quarantine): a well-formed event that the project's configuration
cannot price yet is kept durably, off the ledger, and priced again once the configuration is fixed.

Rules: idempotency covers kept events too (a retry with the same key and content gets the same answer and
no second row; other content under that key is ALREADY_EXISTS), and repricing bills each kept event at most
once, through the ingest path (``batch.store_batch``) under its own idempotency key and the row's id."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import (
    AlreadyExistsError,
    EventQuarantinedError,
    NotFoundError,
    ScrawnError,
    ValidationError,
)
from scrawn.server.db.engine import Database, now_ms
from scrawn.server.events import repository as events
from scrawn.server.events.batch import answer, conflict, store_batch
from scrawn.server.events.intake import EventInput
from scrawn.server.events.price import Unpriceable, load_pricing, price_event
from scrawn.server.events.quarantine import repository as qs
from scrawn.server.events.quarantine.types import Cursor, KeptEvent
from scrawn.server.events.types import Outcome, PricedEvent, Stored

REPRICE_CHUNK = 500  # events priced and stored per transaction
MAX_IDS = 10_000
# Reasons a kept event can still not be stored when repriced (besides the configuration reasons).
REFUSED = "refused"  # today's pricing refuses it (e.g. a division by zero now that the tag exists)
CONFLICT = "conflict"  # its idempotency key (or event id) was meanwhile used for other content


class KeptForRepricing(EventQuarantinedError):
    """The answer for a kept event: FAILED_PRECONDITION, ``KEPT_FOR_REPRICING`` in batches."""

    reason: str

    def __init__(self, event_id: str, idempotency_key: str, field: str, reason: str) -> None:
        super().__init__(
            f"Event kept for repricing: {field}: {reason}",
            field=field,
            event_id=event_id,
            idempotency_key=idempotency_key,
            reason=reason,
        )


@dataclass(frozen=True)
class Held:
    """An event to keep: its input, the key it is kept (and later stored) under, and why."""

    input: EventInput
    key: str
    why: Unpriceable


async def keep(
    conn: AsyncConnection, project_id: str, mode: str, held: Sequence[Held]
) -> tuple[list[Outcome], Counter[str]]:
    """Keep ``held`` in the quarantine (in the caller's transaction); one outcome each, in order, and how
    many new rows by reason code. A key already billed answers as ingest does (duplicate or conflict)."""
    now = now_ms()
    keys = list(dict.fromkeys(h.key for h in held))
    billed = await events.billed(conn, project_id, mode, keys)
    owner: dict[str, int] = {}
    rows = []
    for i, h in enumerate(held):
        if h.key in billed or h.key in owner:
            continue
        owner[h.key] = i
        rows.append(qs.kept_row(project_id, mode, h.input, h.key, h.why, now))
    inserted = await qs.insert_new(conn, rows)
    kept = await qs.by_keys(conn, project_id, mode, [k for k in owner if k not in inserted])
    ids = {str(r["idempotency_key"]): str(r["id"]) for r in rows}
    fresh: Counter[str] = Counter(held[owner[k]].why.reason_code for k in inserted)

    outcomes: list[Outcome] = []
    for h in held:
        fingerprint = h.input.fingerprint
        if h.key in billed:
            outcomes.append(answer(billed[h.key], h.key, fingerprint))
        elif h.key in inserted:
            first = held[owner[h.key]]
            same = first.input.fingerprint == fingerprint
            outcomes.append(
                KeptForRepricing(ids[h.key], h.key, first.why.field, first.why.reason) if same else conflict()
            )
        elif h.key in kept:
            row = kept[h.key]
            same = row.fingerprint == fingerprint
            outcomes.append(KeptForRepricing(row.id, h.key, row.field, row.reason) if same else conflict())
        else:  # neither inserted nor found by key: its eventId is taken by another kept event
            outcomes.append(
                AlreadyExistsError(
                    f"eventId: an event with id {h.input.event_id} already exists", field="eventId"
                )
            )
    return outcomes, fresh


# Listing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """The waiting kept events: how many by reason code, and one page of them, oldest first."""

    by_reason: dict[str, int]
    events: list[KeptEvent]

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


async def waiting(
    conn: AsyncConnection, project_id: str, mode: str, *, limit: int, after_id: str | None = None
) -> Waiting:
    """Counts by reason and up to ``limit`` waiting events after the kept event ``after_id`` (the last one
    of the previous page), which must exist."""
    after = None
    if after_id:
        after = await qs.position(conn, project_id, mode, after_id)
        if after is None:
            raise ValidationError("after", "must be the id of a kept event (the last one you got)")
    by_reason = await qs.waiting_by_reason(conn, project_id, mode)
    return Waiting(by_reason, await qs.page_waiting(conn, project_id, mode, limit=limit, after=after))


# Repricing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepriceResult:
    repriced: int  # kept events that left the quarantine in this run (billed, or already billed by a retry)
    waiting: int  # of those asked for (all: the project's whole quarantine), how many still wait
    amount: Decimal  # what this run put on the ledger, minor units


@dataclass
class _Chunk:
    repriced: int = 0
    amount: Decimal = Decimal(0)


async def reprice(
    db: Database, project_id: str, mode: str, ids: Sequence[str] | None = None, *, chunk: int = REPRICE_CHUNK
) -> RepriceResult:
    """Price waiting kept events (all of them, or ``ids``) with today's configuration and store the priced
    ones exactly once; the rest stay waiting with today's reason. One transaction per chunk."""
    wanted: list[str] | None = None
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        async with db.read() as conn:
            known = await qs.known_ids(conn, project_id, mode, wanted)
        missing = [i for i in wanted if i not in known]
        if missing:
            raise NotFoundError(f"ids: no kept event with id {missing[0]}", field="ids")
    total = _Chunk()
    cursor: Cursor | None = None
    id_chunks = [wanted[i : i + chunk] for i in range(0, len(wanted), chunk)] if wanted is not None else None
    while True:
        if id_chunks is not None:
            if not id_chunks:
                break
            only: list[str] | None = id_chunks.pop(0)
        else:
            only = None
        async with db.write() as conn:
            rows = await qs.lock_waiting(conn, project_id, mode, limit=chunk, after=cursor, ids=only)
            if rows:
                done = await _reprice_rows(conn, project_id, mode, rows)
                total.repriced += done.repriced
                total.amount += done.amount
        if only is None:
            if not rows:
                break
            cursor = rows[-1].cursor
    async with db.read() as conn:
        waiting = await qs.count_waiting(conn, project_id, mode, wanted)
    return RepriceResult(total.repriced, waiting, total.amount)


async def _reprice_rows(
    conn: AsyncConnection, project_id: str, mode: str, rows: Sequence[KeptEvent]
) -> _Chunk:
    now = now_ms()
    done = _Chunk()
    repriced: list[str] = []
    still: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (reason code, field, reason) → ids
    billed = await events.billed(conn, project_id, mode, [r.idempotency_key for r in rows])
    todo: list[tuple[str, EventInput, str]] = []  # (row id, input, key)
    for r in rows:
        row_id, key = r.id, r.idempotency_key
        if key in billed:  # a retry was billed after the configuration was fixed: never bill twice
            if billed[key].fingerprint == r.fingerprint:
                repriced.append(row_id)
            else:
                still[(CONFLICT, "idempotencyKey", conflict().message)].append(row_id)
            continue
        inp = dataclasses.replace(EventInput.from_json(r.input), event_id=row_id)
        todo.append((row_id, inp, key))

    pricing = await load_pricing(conn, project_id, [inp for _, inp, _ in todo])
    priced: list[PricedEvent] = []
    owners: list[str] = []
    for row_id, inp, key in todo:
        try:
            priced.append(price_event(project_id, mode, inp, pricing, key))
            owners.append(row_id)
        except Unpriceable as e:
            still[(e.reason_code, e.field, e.reason)].append(row_id)
        except ScrawnError as e:
            still[(REFUSED, e.field or "", e.message)].append(row_id)
    for row_id, outcome in zip(owners, await store_batch(conn, priced), strict=True):
        if isinstance(outcome, Stored):
            repriced.append(row_id)
            if not outcome.duplicate:
                done.amount += outcome.debit
        else:
            code = CONFLICT if outcome.code == "already_exists" else REFUSED
            still[(code, outcome.field or "", outcome.message)].append(row_id)
    await qs.mark_repriced(conn, project_id, mode, repriced, now)
    for (code, field, reason), ids in still.items():
        await qs.mark_attempt(conn, project_id, mode, ids, now, reason_code=code, field=field, reason=reason)
    done.repriced = len(repriced)
    return done
