"""The re-read of existing idempotency keys (retries, duplicates) probes the unique key's index on both
databases, even on a large table the planner has no statistics for (PostgreSQL with autovacuum off): no
walk through the whole project by another index, no full scan."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import event, text

from scrawn.server.events import repository
from tests.server.events.inputs import MODE, basic, priced
from tests.server.fresh import Fresh

ROWS = 50_000  # enough that a walk through the project costs more than a probe by key

# One statement on both databases: far faster than inserting through the repository.
BULK = text(
    """
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
    INSERT INTO events (project_id, mode, id, idempotency_key, fingerprint, event_type, user_id,
                        reported_at, ingested_at, debit, pricing)
    SELECT :project, :mode, 'id-' || i, 'k-' || i, 'f', 'BASIC_USAGE', 'u' || (i % 100), 1, i, 1, '{}'
    FROM n
    """
)


async def plans_of(fresh: Fresh, rows: list[dict[str, Any]]) -> tuple[list[str], dict[Any, Any]]:
    """Re-read ``rows`` as a flush does (then roll back), and EXPLAIN every statement it sent."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT")):
            sent.append((statement, parameters))

    engine = fresh.db.writer.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        async with fresh.db.writer.connect() as conn, conn.begin() as tx:
            found = await repository.billed_rows(conn, rows)
            await tx.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sent
    explain = "EXPLAIN QUERY PLAN " if fresh.db.is_sqlite else "EXPLAIN "
    plans = []
    async with fresh.db.writer.connect() as conn, conn.begin() as tx:
        for statement, parameters in sent:
            explained = await conn.exec_driver_sql(explain + statement, parameters)
            plans.append("\n".join(str(r[-1]) for r in explained))
        await tx.rollback()
    return plans, found


async def test_retries_are_read_back_by_the_unique_key_on_a_table_never_analyzed(fresh: Fresh) -> None:
    pid = fresh.project_id
    async with fresh.db.write() as conn:
        await conn.execute(BULK, {"rows": ROWS, "project": pid, "mode": MODE})
    keys = ["k-7", "k-49999", *(f"k-{i}" for i in range(100, 700))]  # more than one IN chunk
    rows = [repository.event_row(priced(pid, basic("u1", k)), f"new-{k}", 5) for k in keys]
    plans, found = await plans_of(fresh, rows)
    assert sorted(k for _, _, k in found) == sorted(keys)
    assert (found[(pid, MODE, "k-7")].event_id, found[(pid, MODE, "k-7")].ingested_at) == ("id-7", 7)
    for plan in plans:
        if fresh.db.is_sqlite:  # SEARCH … INDEX sqlite_autoindex_…: the UNIQUE constraint, all its columns
            assert plan.startswith("SEARCH") and "INDEX sqlite_autoindex" in plan, plan
            assert "idempotency_key=?" in plan, plan
        else:  # the conflict check probes the unique index: nothing planned reads the table
            assert "Scan on events" not in plan and "Index Scan" not in plan, plan
            assert "Conflict Arbiter Indexes: uq_events_project_id_mode_idempotency_key" in plan, plan


async def test_a_row_that_lost_only_on_its_event_id_is_not_stored_by_the_re_read(fresh: Fresh) -> None:
    pid = fresh.project_id
    taken = repository.event_row(priced(pid, basic("u1", "a")), "id-a", 5)
    async with fresh.db.write() as conn:
        assert await repository.insert_new(conn, [taken]) == {(pid, MODE, "a")}
    other = repository.event_row(priced(pid, basic("u1", "b")), "id-a", 6)  # key "b" free, id taken
    async with fresh.db.write() as conn:
        assert await repository.billed_rows(conn, [other, taken]) == {
            (pid, MODE, "a"): repository.Billed("id-a", taken[repository.FINGERPRINT], 5, Decimal("1.5"))
        }
    async with fresh.db.read() as conn:
        assert await repository.billed(conn, pid, MODE, ["b"]) == {}
