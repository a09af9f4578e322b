"""The reads the dashboard added to the events and ledger repositories, on both databases, against the
seeded server's data: keyset pages that neither repeat nor skip, exact sums, tenant and mode scope."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from scrawn.money import from_micros
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository as event_rows
from scrawn.server.events import rollup_repository as rollup
from scrawn.server.ledger import summary_repository as summaries
from scrawn.server.ledger.rules import period_of
from tests.conftest import ServerHandle, run_async
from tests.dashboard.seed import SCRIPT_USER, Seeded, csrf_of, sign_in


def _read(server: ServerHandle, work: Any) -> Any:
    async def run() -> Any:
        db = server.db()
        try:
            async with db.read() as conn:
                return await work(conn)
        finally:
            await db.dispose()

    return run_async(run())


def test_event_listing_pages_by_keyset_and_filters(module_server: ServerHandle, seeded: Seeded) -> None:
    scope = event_rows.Scope(module_server.project_id, "live")

    async def pages(conn: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            rows = await event_rows.listing(conn, scope, event_type=None, voided=None, size=1, cursor=cursor)
            seen += [r.id for r in rows[:1]]
            if len(rows) <= 1:
                return seen
            cursor = (rows[0].ingested_at, rows[0].id)

    ids = _read(module_server, pages)
    assert len(ids) == len(set(ids)) >= 4
    assert seeded.ai_event in ids and seeded.test_event not in ids

    async def ai_only(conn: Any) -> list[Any]:
        return list(
            await event_rows.listing(
                conn, scope, event_type="AI_TOKEN_USAGE", model="gpt-4o", voided=False, size=10, cursor=None
            )
        )

    assert [r.id for r in _read(module_server, ai_only)] == [seeded.ai_event]


def test_buckets_sum_exactly(module_server: ServerHandle, seeded: Seeded) -> None:
    async def alice(conn: Any) -> list[event_rows.Bucket]:
        return await event_rows.buckets(
            conn, event_rows.Scope(module_server.project_id, "live", user_id="alice"), 86_400_000
        )

    found = _read(module_server, alice)
    # 250 + tag(CALL) 1.5 + 3 + 4 cents, each bucket summed exactly by the database.
    assert sum(from_micros(b.debit_micros) for b in found) == Decimal("258.5")
    assert all(b.start % 86_400_000 == 0 for b in found)


def test_balance_reads(module_server: ServerHandle, seeded: Seeded) -> None:
    pid = module_server.project_id

    async def reads(conn: Any) -> tuple[Any, ...]:
        first = await summaries.balances_page(conn, pid, "live", after=None, size=1)
        rest = await summaries.balances_page(conn, pid, "live", after=first[0].user_id, size=100)
        prefixed = await summaries.balances_page(conn, pid, "live", after=None, size=10, prefix="<scr")
        test_mode = await summaries.balances_page(conn, pid, "test", after=None, size=10)
        top = await summaries.top_spenders(conn, pid, "live", period_of(now_ms()), 10)
        owed = await summaries.outstanding_micros(conn, pid, "test")
        return first, rest, prefixed, test_mode, top, owed

    first, rest, prefixed, test_mode, top, owed = _read(module_server, reads)
    assert len(first) == 2  # one page and one more
    users = [first[0].user_id, *[r.user_id for r in rest]]
    assert users == sorted(users) and len(users) == len(set(users))
    assert [r.user_id for r in prefixed] == [SCRIPT_USER]
    assert [r.user_id for r in test_mode] == ["tess"]
    assert top[0].spent >= top[-1].spent and all(r.spent > 0 for r in top)
    assert owed == (77_000_000, 1)  # tess owes 77 cents, in micro-units


def test_amounts_by_bucket(module_server: ServerHandle, seeded: Seeded) -> None:
    pid = module_server.project_id

    async def reads(conn: Any) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
        day = 86_400_000
        granted = await summaries.amounts_by_bucket(conn, pid, "live", ("top_up", "grant"), 0, day)
        none_yet = await summaries.amounts_by_bucket(conn, pid, "live", ("payment",), 0, day)
        later = await summaries.amounts_by_bucket(conn, pid, "live", ("top_up", "grant"), now_ms() + day, day)
        return granted, none_yet, later

    granted, none_yet, later = _read(module_server, reads)
    assert sum(granted.values()) == 1000 * 1_000_000  # bob's credit, exact
    assert all(start % 86_400_000 == 0 for start in granted)
    assert none_yet == {} and later == {}


def test_the_overview_reads_the_rollup_and_the_project_time_zone(
    module_server: ServerHandle, seeded: Seeded
) -> None:
    pid = module_server.project_id

    async def reads(conn: Any) -> tuple[list[Any], list[Any]]:
        live = await rollup.totals(conn, pid, "live", 0, now_ms() + 1, 86_400_000)
        test = await rollup.totals(conn, pid, "test", 0, now_ms() + 1, 86_400_000)
        return live, test

    live, test = _read(module_server, reads)
    # alice 250 + 1.5 + 3 + 4, the <script> user's 100; tess's 77 in test mode: exact, by mode.
    assert (sum(n for _, n, _ in live), sum(m for _, _, m in live)) == (4, 358_500_000)
    assert (sum(n for _, n, _ in test), sum(m for _, _, m in test)) == (1, 77_000_000)

    client = sign_in(module_server.base_url, module_server.dash_key)
    page = client.get("/dashboard/live/overview", params={"by": "hour"})
    assert "Billed usage by hour (UTC)" in page.text and "3.585 USD" in page.text
    unknown = client.post(
        "/dashboard/live/overview/time-zone", data={"csrf": csrf_of(page.text), "timeZone": "Mars/Base"}
    )
    assert unknown.status_code == 400 and "timeZone" in unknown.text and "Mars/Base" in unknown.text
    try:
        moved = client.post(
            "/dashboard/test/overview/time-zone",
            data={"csrf": csrf_of(page.text), "timeZone": "Asia/Kolkata", "by": "month"},
        )
        assert (moved.status_code, moved.headers["location"]) == (303, "/dashboard/test/overview?by=month")
        page = client.get("/dashboard/live/overview", params={"by": "month"})  # a project setting: both modes
        assert "Billed usage by month (Asia/Kolkata)" in page.text and "3.585 USD" in page.text
        assert 'value="Asia/Kolkata"' in page.text
    finally:
        client.post(
            "/dashboard/live/overview/time-zone", data={"csrf": csrf_of(page.text), "timeZone": "UTC"}
        )


def test_sparse_filters_read_a_bounded_window(module_server: ServerHandle, seeded: Seeded) -> None:
    """A tag filter reads down to a floor ``scan`` events back and the next page starts there: walking the
    windows finds the one tag(CALL) event, once, and the last window has no floor."""
    scope = event_rows.Scope(module_server.project_id, "live")

    async def walk(conn: Any) -> tuple[list[str], int]:
        found: list[str] = []
        cursor, windows = None, 0
        while True:
            windows += 1
            args = {"event_type": None, "model": None, "cursor": cursor}
            floor = await event_rows.window_end(conn, scope, **args, scan=2)
            rows = await event_rows.listing(
                conn, scope, **args, tag="CALL", voided=None, size=50, floor=floor
            )
            found += [r.id for r in rows]
            if floor is None:
                return found, windows
            cursor = floor

    found, windows = _read(module_server, walk)
    assert len(found) == 1 and windows >= 2
    assert found[0] not in (seeded.basic_event, seeded.ai_event)
