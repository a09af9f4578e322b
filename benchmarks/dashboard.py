"""Page benchmark (issue 11): the time each server-rendered page takes — the customer portal and the operator
dashboard — with many events and customers stored, on SQLite and on PostgreSQL, against a real
``scrawn serve``. Goal: p99 ≤ 300 ms per page.

    python benchmarks/dashboard.py [--db sqlite|postgres|both] [--events 1000000] [--customers 10000]
                                   [--requests 60] [--seed-seconds 600]

The data is written straight into the database before the server starts (bulk ``INSERT … SELECT`` over
``generate_series`` on PostgreSQL, a recursive CTE on SQLite): events spread over the last 30 days and over
five models, each with its usage ledger entry, and one balance row per customer. Each page is then fetched
``--requests`` times, one request at a time over loopback (after two warm-up requests), and the time from
sending the request to the last byte of the answer is recorded. Add a page to ``PAGES`` to measure it too.
Results go to ``benchmarks/results/dashboard-<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import wallets as common  # noqa: E402 - the shared benchmark helpers (servers, machine info, PostgreSQL admin)

RESULTS_DIR = BENCH_DIR / "results"
TARGET_P99_MS = 300.0
DAY_MS = 86_400_000
MODELS = 5
EVENT_COLUMNS = common.EVENT_COLUMNS + ", model, provider"
# The usage rollup of the seeded events, as migration 0010 fills it from stored events (ingest keeps it).
ROLLUP_SQL = (
    "INSERT INTO usage_rollup (project_id, mode, slot_start, events, debit_hi, debit_lo) "
    "SELECT project_id, mode, ingested_at - ingested_at % 900000, COUNT(*), SUM(debit >> 32), "
    "SUM(debit & 4294967295) FROM events WHERE voided_at IS NULL "
    "GROUP BY project_id, mode, ingested_at - ingested_at % 900000"
)


@dataclass(frozen=True)
class Context:
    """What page URLs are built from: the seeded customers, one event id, a portal link."""

    portal_path: str
    customer: str
    event_id: str


# (name, path, needs the dashboard session): add a page here to measure it.
PAGES: list[tuple[str, Callable[[Context], str], bool]] = [
    ("portal", lambda c: c.portal_path, False),
    ("dashboard overview", lambda c: "/dashboard/live/overview", True),
    ("dashboard overview by hour", lambda c: "/dashboard/live/overview?by=hour", True),
    ("dashboard overview by month", lambda c: "/dashboard/live/overview?by=month", True),
    ("dashboard events", lambda c: "/dashboard/live/events", True),
    ("dashboard events by user", lambda c: f"/dashboard/live/events?user={c.customer}", True),
    # A tag no seeded event used: the filter reads every live event of the project (the worst case).
    ("dashboard events by tag", lambda c: "/dashboard/live/events?tag=NEVER_USED", True),
    ("dashboard events voided", lambda c: "/dashboard/live/events?voided=yes", True),
    ("dashboard event", lambda c: f"/dashboard/live/events/{c.event_id}", True),
    ("dashboard customers", lambda c: "/dashboard/live/customers", True),
    ("dashboard customer", lambda c: f"/dashboard/live/customer?user={c.customer}", True),
    ("dashboard keys", lambda c: "/dashboard/live/keys", True),
    ("dashboard pricing", lambda c: "/dashboard/live/pricing", True),
    ("dashboard payments", lambda c: "/dashboard/live/payments", True),
    ("dashboard webhooks", lambda c: "/dashboard/live/webhooks", True),
    ("dashboard quarantine", lambda c: "/dashboard/live/quarantine", True),
]


# ---------------------------------------------------------------------------------------------- seeding


def _event_values(sql_id: str, g: str, fingerprint: str, user: str, at: str) -> str:
    """The SELECT list of one seeded event, in EVENT_COLUMNS order (``g`` the row number)."""
    return (
        f"{sql_id}, 'seed-' || {g}, {fingerprint}, 'BASIC_USAGE', {user}, 'RAW', {at} / 1000, {at}, 1000000, "
        f"'{common.PRICING}', 'model-' || ({g} % {MODELS}), 'bench'"
    )


def seed_sqlite(path: Path, project_id: str, events: int, customers: int, budget: float) -> dict[str, Any]:
    now = int(time.time() * 1000)
    conn = sqlite3.connect(path, isolation_level=None)
    started, done, chunk = time.monotonic(), 0, 100_000
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # the seeding connection only; the server uses FULL
        conn.execute("PRAGMA cache_size=-262144")
        series = "WITH RECURSIVE g(x) AS (SELECT :a UNION ALL SELECT x + 1 FROM g WHERE x < :b) "
        ident = "printf('%08x-0000-4000-{v}-%012x', x, x)"
        fingerprint = "printf('%064x', x)"
        user, at = "'user-' || (x % :u)", "(:now - (x % 30) * 86400000 - (x % 86400) * 997)"
        while done < events and time.monotonic() - started < budget:
            a, b = done + 1, min(events, done + chunk)
            params = {"p": project_id, "u": customers, "now": now, "a": a, "b": b}
            conn.execute("BEGIN")
            conn.execute(
                f"{series}INSERT INTO events ({EVENT_COLUMNS}) SELECT :p, 'live', "
                f"{_event_values(ident.format(v='8000'), 'x', fingerprint, user, at)} FROM g",
                params,
            )
            conn.execute(
                f"{series}INSERT INTO ledger_entries ({common.LEDGER_COLUMNS}) SELECT :p, 'live', "
                f"{ident.format(v='9000')}, {user}, 'usage', -1000000, {ident.format(v='8000')}, {at} FROM g",
                params,
            )
            conn.execute("COMMIT")
            done = b
        conn.execute(
            "INSERT INTO balances (project_id, mode, user_id, balance, held, updated_at, spent) "
            "SELECT project_id, mode, user_id, sum(amount), 0, ?, 0 FROM ledger_entries "
            "WHERE project_id = ? GROUP BY project_id, mode, user_id",
            (now, project_id),
        )
        conn.execute(ROLLUP_SQL)
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {"events": done, "seed_seconds": round(time.monotonic() - started, 1)}


def seed_postgres(url: str, project_id: str, events: int, customers: int, budget: float) -> dict[str, Any]:
    import asyncpg

    now = int(time.time() * 1000)
    user, at = "'user-' || (g % $2::int)", "($3::bigint - (g % 30) * 86400000 - (g % 86400) * 997)"
    events_sql = (
        f"INSERT INTO events ({EVENT_COLUMNS}) SELECT $1, 'live', "
        f"{_event_values(common.pg_id('8000'), 'g', 'md5(g::text)', user, at)} "
        "FROM generate_series($4::bigint, $5::bigint) AS g"
    )
    ledger_sql = (
        f"INSERT INTO ledger_entries ({common.LEDGER_COLUMNS}) SELECT $1, 'live', {common.pg_id('9000')}, "
        f"{user}, 'usage', -1000000, {common.pg_id('8000')}, {at} "
        "FROM generate_series($4::bigint, $5::bigint) AS g"
    )

    async def run() -> dict[str, Any]:
        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        conns = [await asyncpg.connect(plain), await asyncpg.connect(plain)]
        started, done, chunk = time.monotonic(), 0, 100_000
        try:
            for c in conns:
                await c.execute("SET synchronous_commit = off")  # seeding sessions only
            while done < events and time.monotonic() - started < budget:
                a, b = done + 1, min(events, done + chunk)
                await asyncio.gather(  # events and their ledger entries on two connections (two CPUs)
                    conns[0].execute(events_sql, project_id, customers, now, a, b),
                    conns[1].execute(ledger_sql, project_id, customers, now, a, b),
                )
                done = b
            await conns[0].execute(
                "INSERT INTO balances (project_id, mode, user_id, balance, held, updated_at, spent) "
                "SELECT project_id, mode, user_id, sum(amount), 0, $2, 0 FROM ledger_entries "
                "WHERE project_id = $1 GROUP BY project_id, mode, user_id",
                project_id,
                now,
            )
            await conns[0].execute(ROLLUP_SQL)
            await conns[0].execute("ANALYZE")
        finally:
            for c in conns:
                await c.close()
        return {"events": done, "seed_seconds": round(time.monotonic() - started, 1)}

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------- measuring


def dash_key(database_url: str, project_id: str) -> str:
    from scrawn.server.db.engine import Database
    from scrawn.server.keys.service import KeyService

    async def run() -> str:
        db = Database(database_url)
        try:
            async with db.write() as conn:
                _, key = await KeyService(db, common.SECRET).create_key(conn, project_id, "dash", "bench")
            return key
        finally:
            await db.dispose()

    return asyncio.run(run())


def _template(match: re.Match[str]) -> str:
    return "/portal/{token}" if match.group(0).startswith("/portal/") else "/events/{id}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sign_in(client: Any, key: str) -> None:
    form = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text[:500]
    answer = client.post("/dashboard/sign-in", data={"csrf": csrf.group(1), "key": key})
    assert answer.status_code == 303, answer.text[:500]


def time_pages(
    base: str, dash: str, ctx: Context, requests: int, page_seconds: float, only: str = ""
) -> list[dict[str, Any]]:
    import httpx

    results = []
    with httpx.Client(base_url=base, timeout=60) as client:
        signed_in = False
        for name, path_of, needs_session in PAGES:
            if only not in name:
                continue
            if needs_session and not signed_in:
                sign_in(client, dash)
                signed_in = True
            path, times, statuses = path_of(ctx), [], set()
            started = time.monotonic()
            for i in range(requests + 2):
                t0 = time.perf_counter()
                answer = client.get(path)
                elapsed = (time.perf_counter() - t0) * 1000
                statuses.add(answer.status_code)
                if i >= 2:  # two warm-up requests: templates compiled, caches filled
                    times.append(elapsed)
                if times and time.monotonic() - started > page_seconds:
                    break  # a page far over the goal: its few samples say enough
            results.append(
                {
                    "page": name,
                    "path": re.sub(r"/portal/[^/?]+|/events/[^/?]+", _template, path.split("?")[0]),
                    "requests": len(times),
                    "statuses": sorted(statuses),
                    "p50_ms": round(percentile(times, 0.50), 1),
                    "p99_ms": round(percentile(times, 0.99), 1),
                    "max_ms": round(max(times), 1),
                }
            )
            print(f"  {name}: {results[-1]}", flush=True)
    return results


def portal_path(base: str, live_key: str, customer: str) -> str:
    from scrawn import Scrawn

    with Scrawn(live_key, base) as client:
        return client.portal_link(customer).url.removeprefix(base)


def run_one(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"scrawn-bench-pages-{kind}-"))
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    else:
        pg_name = f"scrawn_bench_pages_{int(time.time())}"
        common.pg_admin(args.pg_url, f'CREATE DATABASE "{pg_name}"')
        url = f"{args.pg_url.rsplit('/', 1)[0]}/{pg_name}"
    try:
        project_id, live_key = common.bootstrap(url, data_dir)
        from scrawn.server.config import normalise_database_url

        dash = dash_key(normalise_database_url(url), project_id)
        print(f"{kind}: seeding up to {args.events:,} events over {args.customers:,} customers", flush=True)
        if kind == "sqlite":
            seeded = seed_sqlite(
                data_dir / "scrawn.db", project_id, args.events, args.customers, args.seed_seconds
            )
        else:
            seeded = seed_postgres(url, project_id, args.events, args.customers, args.seed_seconds)
        print(f"{kind}: seeded {seeded}", flush=True)
        process, port = common.start_scrawn(url, data_dir)
        try:
            base = f"http://127.0.0.1:{port}"
            customer = f"user-{args.customers // 2}"
            ctx = Context(
                portal_path(base, live_key, customer), customer, "00000001-0000-4000-8000-000000000001"
            )
            pages = time_pages(base, dash, ctx, args.requests, args.page_seconds, args.only)
        finally:
            common.stop(process)
        return {"database": kind, "customers": args.customers, **seeded, "pages": pages}
    finally:
        if pg_name:
            common.pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Page benchmark, {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['memory_gib']} GiB, Python {m['python']}, SQLite "
        f"{m['sqlite']}, {m.get('postgresql', '')}. Load average at start {m['loadavg_at_start']}. "
        f"Git {m['git_commit']}{' with uncommitted changes' if m['uncommitted_changes'] else ''}. Client, "
        "server and database share the machine.",
        "",
        f"Time per request, sequential over loopback, up to {report['requests']} requests per page (fewer "
        f"when a page passes its time budget, {report['page_seconds']:.0f} s) after two warm-up requests. "
        f"Goal: p99 ≤ {TARGET_P99_MS:.0f} ms per page.",
        "",
        "| database | events | customers | page | path | status | requests | p50 ms | p99 ms | max ms "
        "| goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for p in run["pages"]:
            goal = "met" if p["p99_ms"] <= TARGET_P99_MS else "missed"
            status = ",".join(map(str, p["statuses"]))
            lines.append(
                f"| {run['database']} | {run['events']:,} | {run['customers']:,} | {p['page']} | "
                f"`{p['path']}` | {status} | {p['requests']} | {p['p50_ms']} | {p['p99_ms']} | "
                f"{p['max_ms']} | {goal} |"
            )
    lines += ["", "## Seeding", ""]
    lines += [f"- {r['database']}: {r['events']:,} events in {r['seed_seconds']} s." for r in report["runs"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--page-seconds", type=float, default=60.0, help="stop timing a page after this long")
    parser.add_argument("--seed-seconds", type=float, default=600.0, help="stop seeding after this long")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite data directory")
    parser.add_argument("--only", default="", help="measure only the pages whose name contains this")
    parser.add_argument("--out", default=f"dashboard-{dt.date.today().isoformat()}")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    report = {
        "date": dt.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "requests": args.requests,
        "page_seconds": args.page_seconds,
        "machine": common.machine_info(args.pg_url if "postgres" in kinds else None),
        "runs": [run_one(kind, args) for kind in kinds],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS_DIR / f"{args.out}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
