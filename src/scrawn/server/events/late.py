"""The late-event window (docs/events.md#late-events): an event reported more than the project's
``late_window_days`` ago is refused, naming its timestamp, as Stripe's meters refuse events older than 35
days. The hot path stays free: only events older than the smallest window any project may set (a day) need
the project's setting, read once per ingest call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from scrawn._codes import INVALID_TIMESTAMP
from scrawn.errors import ScrawnError
from scrawn.server.clock import now_ms
from scrawn.server.db.engine import Database
from scrawn.server.events import repository
from scrawn.server.events.intake import EventInput, EventInvalid
from scrawn.server.events.types import Outcome
from scrawn.server.keys.service import Caller
from scrawn.server.projects import service as projects
from scrawn.server.projects.types import LATE_WINDOW_MIN

DAY = 86_400
Ingest = Callable[[Sequence[EventInput]], Awaitable[list[Outcome]]]


def any_old(inputs: Sequence[EventInput], now: int | None = None) -> bool:
    """Whether any event is older than every possible window's floor: only then is the project read."""
    floor = (now if now is not None else now_ms() // 1000) - LATE_WINDOW_MIN * DAY
    return any(inp.reported_at < floor for inp in inputs)


async def without_late(
    db: Database, caller: Caller, inputs: Sequence[EventInput], ingest: Ingest
) -> list[Outcome]:
    """``ingest`` the events inside the project's window; the others are refused, one outcome each, in
    order. A retry of an event already stored (or kept for repricing) is not refused: it answers as the
    duplicate it is."""
    now = now_ms() // 1000
    async with db.read() as conn:
        days = await projects.late_window_days(conn, caller.project_id)
        late = [i for i, inp in enumerate(inputs) if inp.reported_at < now - days * DAY]
        keys = {key for i in late if (key := inputs[i].idempotency_key)}
        known = await repository.known_keys(conn, caller.project_id, caller.mode, keys) if keys else set()
    refused: dict[int, ScrawnError] = {
        i: _too_old(inputs[i], days) for i in late if inputs[i].idempotency_key not in known
    }
    if not refused:
        return await ingest(inputs)
    rest = [inp for i, inp in enumerate(inputs) if i not in refused]
    stored = iter(await ingest(rest) if rest else [])
    return [refused[i] if i in refused else next(stored) for i in range(len(inputs))]


def _too_old(inp: EventInput, days: int) -> EventInvalid:
    field = "timestamp" if inp.typed is not None else "reportedTimestamp"  # usage.v1 TrackEvents names it so
    span = "1 day" if days == 1 else f"{days} days"
    return EventInvalid(
        field,
        f"is more than {span} in the past, outside the project's late-event window "
        "(`scrawn projects set --late-window`)",
        INVALID_TIMESTAMP,
    )
