"""What the usage rollup costs a flush: ``events.batch.store_batch`` of ``--events`` new events in one write
transaction, timed with the rollup upsert and with it replaced by a no-op, alternating (A, B, A, B, …) so
that both see the same load from the rest of the machine. In-process, no server: this isolates the flush.

    python benchmarks/flush_rollup.py [--db sqlite|postgres|both] [--events 500] [--rounds 40]

Results go to ``benchmarks/results/flush_rollup-<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import wallets as common  # noqa: E402 - the shared benchmark helpers (machine info, PostgreSQL admin)

from scrawn.server.db.engine import Database  # noqa: E402
from scrawn.server.db.migrate import migrate  # noqa: E402
from scrawn.server.events import batch, rollup  # noqa: E402
from scrawn.server.events.intake import EventInput  # noqa: E402
from scrawn.server.events.types import PricedEvent  # noqa: E402
from scrawn.server.pricing.pricer import Debit  # noqa: E402
from scrawn.server.projects.service import create_project  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"


def events(project_id: str, n: int) -> list[PricedEvent]:
    found = []
    for i in range(n):
        key = uuid.uuid4().hex
        inp = EventInput(
            event_type="BASIC_USAGE",
            user_id=f"user-{i % 1000}",
            reported_at=int(time.time()),
            event_id=None,
            idempotency_key=key,
            metadata=None,
            fingerprint=key,
            basic_usage_type="RAW",
            debit=Debit("amount", "1.5"),
        )
        found.append(PricedEvent(project_id, "live", inp, key, Decimal("1.5"), {}, {"amount": "1.5"}))
    return found


async def measure(url: str, n: int, rounds: int) -> dict[str, Any]:
    db = Database(url)
    real = rollup.stored

    inside: list[float] = []  # ms spent in the rollup call itself, per flush

    async def timed(*a: Any) -> None:
        started = time.perf_counter()
        await real(*a)
        inside.append((time.perf_counter() - started) * 1000)

    async def skip(*_: Any) -> None:
        return None

    try:
        await migrate(db)
        async with db.write() as conn:
            project_id = await create_project(conn, "bench")
        times: dict[str, list[float]] = {"with rollup": [], "without": []}
        for r in range(rounds * 2 + 2):
            name = "with rollup" if r % 2 == 0 else "without"
            batch.rollup.stored = timed if name == "with rollup" else skip  # type: ignore[assignment]
            flush = events(project_id, n)
            started = time.perf_counter()
            async with db.write() as conn:
                await batch.store_batch(conn, flush)
            if r >= 2:  # the first pair warms caches and creates the balance rows
                times[name].append((time.perf_counter() - started) * 1000)
    finally:
        batch.rollup.stored = real  # type: ignore[assignment]
        await db.dispose()
    times["rollup call alone"] = inside[1:]
    return {
        name: {"median_ms": round(statistics.median(t), 2), "p90_ms": round(sorted(t)[int(0.9 * len(t))], 2)}
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            runs.append({"database": "sqlite", **asyncio.run(measure(url, args.events, args.rounds))})
    if args.db in ("postgres", "both"):
        name = f"scrawn_flush_{uuid.uuid4().hex[:8]}"
        common.pg_admin(args.pg_url, f"CREATE DATABASE {name}")
        url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
        try:
            runs.append({"database": "postgres", **asyncio.run(measure(url, args.events, args.rounds))})
        finally:
            common.pg_admin(args.pg_url, f"DROP DATABASE {name} WITH (FORCE)")
    stem = args.out or f"flush_rollup-{dt.date.today().isoformat()}"
    command = "python benchmarks/flush_rollup.py " + " ".join(sys.argv[1:])
    result = {"command": command, "events": args.events, "rounds": args.rounds, "runs": runs}
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Flush cost of the usage rollup, {dt.date.today().isoformat()}",
        "",
        f"Command: `{command}`. One flush = `store_batch` of {args.events} new events (1,000 users) in one",
        f"write transaction; {args.rounds} flushes each way, alternating. The last line is the time spent",
        "in `rollup.stored` itself (summing the flush, its one upsert) within the flushes with the rollup.",
        "",
        "| database | flush | median ms | p90 ms |",
        "|---|---|---:|---:|",
    ]
    for run in runs:
        for name in ("with rollup", "without", "rollup call alone"):
            lines.append(f"| {run['database']} | {name} | {run[name]['median_ms']} | {run[name]['p90_ms']} |")
    (RESULTS_DIR / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
