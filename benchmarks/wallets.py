"""Wallet benchmark (DESIGN §10, issue 5): atomic ``Debit`` calls per second with 64 concurrent callers, and
``GetBalance`` latency (p50/p99) with many events stored, against a real ``scrawn serve`` on SQLite and on
PostgreSQL, each throughput beside the no-op ceiling of the same server stack (``benchmarks/noop_server.py``,
unary gRPC) measured in the same run.

    python benchmarks/wallets.py [--db sqlite|postgres|both] [--seconds 15] [--seed-seconds 120]

The events are seeded straight into the database before the server starts (a bulk ``INSERT … SELECT`` over
``generate_series`` on PostgreSQL, a recursive CTE on SQLite), each with its usage ledger entry, and the
users' balance rows are set to the sum of those entries: as many as fit in ``--seed-seconds`` (at most
``--events``, default 10 M). The count reached is recorded. Results go to
``benchmarks/results/wallets-<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-" + "x" * 24
WALLET = "/wallet.v1.WalletService/"
REGISTER = "/event.v1.EventService/RegisterEvent"
TARGET_P99_MS = 2.0  # DESIGN §10: balance lookup p99 ≤ 2 ms with 10 M events stored
TARGET_EVENTS = 10_000_000


# ----------------------------------------------------------------------------------------------------
# Load: spawned worker processes, each with ``callers`` coroutines calling back to back over grpcio aio
# ----------------------------------------------------------------------------------------------------


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_load(spec))


def _request(kind: str, rng: random.Random, users: int) -> Any:
    from scrawn._proto.event.v1 import event_pb2 as ev
    from scrawn._proto.wallet.v1 import wallet_pb2 as w

    user = f"user-{rng.randrange(users)}"
    if kind == "noop":
        return ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=user, basicUsage=ev.BasicUsage(amount=1))
    if kind == "debit":
        return w.DebitRequest(userId=user, amount="0.01", idempotencyKey=str(uuid.uuid4()))
    return w.GetBalanceRequest(userId=user)


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    import grpc

    from scrawn._proto.event.v1 import event_pb2 as ev
    from scrawn._proto.wallet.v1 import wallet_pb2 as w

    kind, users = spec["kind"], spec["users"]
    path, response = {
        "noop": (REGISTER, ev.RegisterEventResponse),
        "debit": (WALLET + "Debit", w.TransactionResponse),
        "balance": (WALLET + "GetBalance", w.Balance),
    }[kind]
    rng = random.Random(spec["seed"])
    channels = [
        grpc.aio.insecure_channel(spec["target"], options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(spec["channels"])
    ]
    calls = [
        ch.unary_unary(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        for ch in channels
    ]
    metadata_ = [("authorization", f"Bearer {spec['key']}")]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    window_start, end_at = spec["window_start"], spec["end_at"]
    await asyncio.sleep(max(0.0, spec["start_at"] - time.monotonic()))

    async def caller(n: int) -> None:
        call = calls[n % len(calls)]
        while time.monotonic() < end_at:
            request = _request(kind, rng, users)
            t0 = time.monotonic()
            try:
                await call(request, metadata=metadata_, timeout=30)
            except grpc.aio.AioRpcError as e:
                errors[e.code().name] += 1
                continue
            t1 = time.monotonic()
            if t1 >= window_start and t1 <= end_at:
                latencies.append(t1 - t0)

    await asyncio.gather(*(caller(n) for n in range(spec["callers"])))
    for ch in channels:
        await ch.close()
    return {"latencies": latencies, "errors": dict(errors)}


def measure(
    kind: str,
    target: str,
    key: str,
    users: int,
    *,
    concurrency: int,
    procs: int,
    seconds: float,
    warmup: float,
    cpu: Callable[[], dict[int, float]],
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.monotonic() + 3.0  # after the workers have imported grpc
    samples: list[dict[int, float]] = []
    timers = [
        threading.Timer(at - time.monotonic(), lambda: samples.append(cpu()))
        for at in (start_at + warmup, start_at + warmup + seconds)
    ]
    for timer in timers:
        timer.start()
    specs = [
        {
            "kind": kind,
            "target": target,
            "key": key,
            "users": users,
            "seed": i,
            "channels": 2,
            "callers": concurrency // procs + (1 if i < concurrency % procs else 0),
            "start_at": start_at,
            "window_start": start_at + warmup,
            "end_at": start_at + warmup + seconds,
        }
        for i in range(procs)
    ]
    with ctx.Pool(procs) as pool:
        parts = pool.map(_worker, specs)
    for timer in timers:
        timer.join()
    latencies = sorted(x for p in parts for x in p["latencies"])
    errors: Counter[str] = Counter()
    for p in parts:
        errors.update(p["errors"])
    return {
        "kind": kind,
        "concurrency": concurrency,
        "seconds": seconds,
        "calls": len(latencies),
        "calls_per_s": len(latencies) / seconds,
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "errors": dict(errors),
        "server_cpu_ms_per_call": _cpu_ms_per_call(samples, len(latencies)),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }


def sequential_lookups(
    target: str, key: str, users: int, n: int, cpu: Callable[[], dict[int, float]]
) -> dict[str, Any]:
    """One caller, one call at a time: the latency of a balance lookup itself."""
    import grpc

    from scrawn._proto.wallet.v1 import wallet_pb2 as w

    rng = random.Random(7)
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            WALLET + "GetBalance",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=w.Balance.FromString,
        )
        md = [("authorization", f"Bearer {key}")]
        for _ in range(200):  # warm-up
            call(w.GetBalanceRequest(userId=f"user-{rng.randrange(users)}"), metadata=md, timeout=30)
        latencies = []
        samples = [cpu()]
        for _ in range(n):
            request = w.GetBalanceRequest(userId=f"user-{rng.randrange(users)}")
            t0 = time.perf_counter()
            call(request, metadata=md, timeout=30)
            latencies.append(time.perf_counter() - t0)
        samples.append(cpu())
    latencies.sort()
    return {
        "kind": "balance-sequential",
        "concurrency": 1,
        "calls": n,
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": latencies[-1] * 1000,
        "server_cpu_ms_per_call": _cpu_ms_per_call(samples, n),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }


def cpu_seconds(root: int, admin_url: str | None = None, database: str | None = None) -> dict[int, float]:
    """CPU seconds (user + system, all threads) by pid: the server process ``root``, its descendants and,
    with ``database``, the PostgreSQL backends connected to it. Rates swing with the other load on a shared
    machine; the CPU a call costs the serving side does much less."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    pids, todo = {root}, [root]
    while todo:
        parent = todo.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in pids]
        pids.update(children)
        todo += children
    if admin_url is not None and database is not None:
        rows = pg_admin(admin_url, f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'")
        pids.update(int(r["pid"]) for r in rows)
    found: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def _cpu_ms_per_call(samples: list[dict[int, float]], calls: int) -> float | None:
    """Serving-side CPU between the first and the last sample, per call (a process that appeared in
    between counts from zero)."""
    if len(samples) < 2 or not calls:
        return None
    first, last = samples[0], samples[-1]
    return sum(cpu - first.get(pid, 0.0) for pid, cpu in last.items()) * 1000 / calls


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


# ----------------------------------------------------------------------------------------------------
# Databases: create, bootstrap, seed
# ----------------------------------------------------------------------------------------------------


def pg_admin(admin_url: str, sql: str) -> list[Any]:
    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def bootstrap(database_url: str, data_dir: Path) -> tuple[str, str]:
    """Migrate, create a project and a live key (as tests/conftest.py does)."""
    from scrawn.server.config import Settings
    from scrawn.server.db.engine import Database
    from scrawn.server.keys.service import KeyService
    from scrawn.server.projects.service import bootstrap as cli_bootstrap

    settings = Settings(data_dir=data_dir, database_url=database_url, secret=SECRET)

    async def run() -> tuple[str, str]:
        db = Database(settings.resolved_database_url)
        try:
            created = await cli_bootstrap(db, settings, "bench", only_if_empty=False)
            assert created is not None
            project_id = created[0]
            async with db.write() as conn:
                _, key = await KeyService(db, SECRET).create_key(conn, project_id, "live", "bench")
            return project_id, key
        finally:
            await db.dispose()

    return asyncio.run(run())


EVENT_COLUMNS = (
    "project_id, mode, id, idempotency_key, fingerprint, event_type, user_id, basic_usage_type, reported_at, "
    "ingested_at, debit, pricing"
)
LEDGER_COLUMNS = "project_id, mode, id, user_id, kind, amount, event_id, created_at"
PRICING = '{"amount":"1"}'


def pg_id(variant: str) -> str:
    """A UUID-shaped id that grows with g: appending to the primary key's B-tree keeps seeding fast (the
    lookups measured never read these tables)."""
    return f"lpad(to_hex(g), 8, '0') || '-0000-4000-{variant}-' || lpad(to_hex(g), 12, '0')"


def seed_postgres(
    url: str, project_id: str, users: int, budget: float, limit: int, chunk: int
) -> dict[str, Any]:
    import asyncpg

    now_ms = int(time.time() * 1000)

    async def insert(conn: Any, sql: str, a: int, b: int) -> None:
        async with conn.transaction():
            await conn.execute(sql, project_id, users, now_ms, a, b)

    async def run() -> dict[str, Any]:
        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        conn, other = await asyncpg.connect(plain), await asyncpg.connect(plain)
        try:
            for c in (conn, other):
                await c.execute("SET synchronous_commit = off")  # seeding sessions only
            started, done, chunks = time.monotonic(), 0, []
            while done < limit:
                a, b = done + 1, min(limit, done + chunk)
                t0 = time.monotonic()
                await asyncio.gather(  # events and their ledger entries on two connections (two CPUs)
                    insert(
                        conn,
                        f"INSERT INTO events ({EVENT_COLUMNS}) SELECT $1, 'live', "
                        f"{pg_id('8000')}, 'seed-' || lpad(g::text, 12, '0'), md5(g::text), 'BASIC_USAGE', "
                        "'user-' || (g % $2::int), 'RAW', $3::bigint / 1000, "
                        f"$3::bigint - 86400000 + g / 100, 1000000, '{PRICING}' "
                        "FROM generate_series($4::bigint, $5::bigint) AS g",
                        a,
                        b,
                    ),
                    insert(
                        other,
                        f"INSERT INTO ledger_entries ({LEDGER_COLUMNS}) SELECT $1, 'live', "
                        f"{pg_id('9000')}, 'user-' || (g % $2::int), 'usage', -1000000, "
                        f"{pg_id('8000')}, $3::bigint - 86400000 + g / 100 "
                        "FROM generate_series($4::bigint, $5::bigint) AS g",
                        a,
                        b,
                    ),
                )
                chunks.append(time.monotonic() - t0)
                done = b
                elapsed = time.monotonic() - started
                if elapsed + chunks[-1] > budget:
                    break
            t0 = time.monotonic()
            await conn.execute(
                "INSERT INTO balances (project_id, mode, user_id, balance, held, updated_at, spent) "
                "SELECT project_id, mode, user_id, sum(amount), 0, $2, 0 FROM ledger_entries "
                "WHERE project_id = $1 GROUP BY project_id, mode, user_id",
                project_id,
                now_ms,
            )
            await conn.execute("ANALYZE")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            return {
                "events": done,
                "seed_seconds": round(time.monotonic() - started, 1),
                "balances_seconds": round(time.monotonic() - t0, 1),
                "database_bytes": size,
            }
        finally:
            await conn.close()
            await other.close()

    return asyncio.run(run())


def seed_sqlite(
    path: Path, project_id: str, users: int, budget: float, limit: int, chunk: int
) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # the seeding connection only; the server uses FULL
        conn.execute("PRAGMA cache_size=-262144")
        started, done, chunks = time.monotonic(), 0, []
        while done < limit:
            a, b = done + 1, min(limit, done + chunk)
            t0 = time.monotonic()
            conn.execute("BEGIN")
            params = {"p": project_id, "u": users, "now": now_ms, "a": a, "b": b}
            conn.execute(
                "WITH RECURSIVE g(x) AS (SELECT :a UNION ALL SELECT x + 1 FROM g WHERE x < :b) "
                f"INSERT INTO events ({EVENT_COLUMNS}) SELECT :p, 'live', "
                "printf('%08x-0000-4000-8000-%012x', x, x), printf('seed-%012d', x), printf('%064x', x), "
                "'BASIC_USAGE', "
                "'user-' || (x % :u), 'RAW', :now / 1000, :now - 86400000 + x / 100, 1000000, "
                f"'{PRICING}' FROM g",
                params,
            )
            conn.execute(
                "WITH RECURSIVE g(x) AS (SELECT :a UNION ALL SELECT x + 1 FROM g WHERE x < :b) "
                f"INSERT INTO ledger_entries ({LEDGER_COLUMNS}) SELECT :p, 'live', "
                "printf('%08x-0000-4000-9000-%012x', x, x), 'user-' || (x % :u), 'usage', -1000000, "
                "printf('%08x-0000-4000-8000-%012x', x, x), :now - 86400000 + x / 100 FROM g",
                params,
            )
            conn.execute("COMMIT")
            chunks.append(time.monotonic() - t0)
            done = b
            if time.monotonic() - started + chunks[-1] > budget:
                break
        t0 = time.monotonic()
        conn.execute(
            "INSERT INTO balances (project_id, mode, user_id, balance, held, updated_at, spent) "
            "SELECT project_id, mode, user_id, sum(amount), 0, ?, 0 FROM ledger_entries "
            "WHERE project_id = ? GROUP BY project_id, mode, user_id",
            (now_ms, project_id),
        )
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {
            "events": done,
            "seed_seconds": round(time.monotonic() - started, 1),
            "balances_seconds": round(time.monotonic() - t0, 1),
            "database_bytes": path.stat().st_size,
        }
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    import httpx

    out = open(log, "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 180  # a server starts slowly on a busy shared machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{cmd} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            if (
                "noop_server" in " ".join(cmd)
                or httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            ):
                return process
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{cmd} did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_scrawn(database_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    env |= {
        "SCRAWN_PORT": str(port),
        "SCRAWN_DATA_DIR": str(data_dir),
        "SCRAWN_DATABASE_URL": database_url,
        "SCRAWN_SECRET": SECRET,
        "SCRAWN_LOG_LEVEL": "warning",
        "SCRAWN_WORKERS": "1",  # one server process, as every recorded result (the default is one per CPU)
        "PYTHONPATH": str(ROOT / "src"),
    }
    cmd = [sys.executable, "-c", "from scrawn.server.cli import main; main()", "serve"]
    return start(cmd, env, data_dir / "server.log", port), port


def credit_users(target: str, key: str, users: int) -> None:
    """Give every debit target a large balance (through the real Credit RPC)."""
    import grpc

    from scrawn._proto.wallet.v1 import wallet_pb2 as w

    async def run() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(
                WALLET + "Credit",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=w.TransactionResponse.FromString,
            )
            md = [("authorization", f"Bearer {key}")]
            sem = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with sem:
                    await call(
                        w.CreditRequest(
                            userId=f"user-{i}", amount="1000000000", idempotencyKey=f"bench-credit-{i}"
                        ),
                        metadata=md,
                        timeout=60,
                    )

            await asyncio.gather(*(one(i) for i in range(users)))

    asyncio.run(run())


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


def machine_info(pg_admin_url: str | None) -> dict[str, Any]:
    mem_kb, model = 0, ""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for dist in (
        "scrawn",
        "hypercorn",
        "connectrpc",
        "sqlalchemy",
        "grpcio",
        "protobuf",
        "aiosqlite",
        "asyncpg",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": versions,
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": list(os.getloadavg()),
    }
    if pg_admin_url:
        try:
            info["postgresql"] = pg_admin(pg_admin_url, "SELECT version() AS v")[0]["v"]
        except Exception as e:  # reported, never fatal
            info["postgresql"] = f"unavailable: {type(e).__name__}"
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        info["uncommitted_changes"] = bool(dirty.strip())
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    return info


def _f(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        f"# Wallet benchmark, {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {info['cpu_model']}, {info['nproc']} CPUs, {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}, SQLite {info['sqlite']}, "
        f"{info.get('postgresql', 'no PostgreSQL')}. "
        f"Load average at start {info['loadavg_at_start']}. Packages: "
        + ", ".join(f"{k} {v}" for k, v in info["packages"].items())
        + f". Git {info.get('git_commit')}"
        + (" with uncommitted changes" if info.get("uncommitted_changes") else "")
        + ". Client and server share the machine.",
        "",
        "## Summary",
        "",
        f"| database | events stored (seeded) | Debit/s, {report['concurrency']} callers, "
        f"{report['debit_users']:,} users | no-op ceiling (unary gRPC) | ratio | Debit/s, one user "
        f"| GetBalance p50 / p99 ms (1 caller) | p99 target ≤ {TARGET_P99_MS:g} ms "
        "| GetBalance/s and p99 ms, same callers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for db in report["databases"]:
        m = {x["kind"] + ("-hot" if x.get("hot") else ""): x for x in db["measurements"]}
        noop, spread, hot = m.get("noop"), m.get("debit"), m.get("debit-hot")
        seq, conc = m.get("balance-sequential"), m.get("balance")
        ratio = (
            spread["calls_per_s"] / noop["calls_per_s"] if spread and noop and noop["calls_per_s"] else None
        )
        ok = seq and seq["p99_ms"] is not None and seq["p99_ms"] <= TARGET_P99_MS
        cells = [
            db["db"],
            f"{db['seed']['events']:,} ({db['seed']['seed_seconds']} s)",
            _f(spread and spread["calls_per_s"]),
            _f(noop and noop["calls_per_s"]),
            _f(ratio, ".2f"),
            _f(hot and hot["calls_per_s"]),
            f"{_f(seq and seq['p50_ms'], '.2f')} / {_f(seq and seq['p99_ms'], '.2f')}",
            "met" if ok else "missed",
            f"{_f(conc and conc['calls_per_s'])}, {_f(conc and conc['p99_ms'], '.1f')}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Every measurement",
        "",
        "| database | what | callers | calls | calls/s | p50 ms | p99 ms | server CPU ms/call | errors "
        "| load (1 min) after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for db in report["databases"]:
        for x in db["measurements"]:
            what = x["kind"] + (" (one user)" if x.get("hot") else "")
            lines.append(
                f"| {db['db']} | {what} | {x['concurrency']} | {x['calls']:,} | {_f(x.get('calls_per_s'))} | "
                f"{_f(x['p50_ms'], '.2f')} | {_f(x['p99_ms'], '.2f')} | "
                f"{_f(x.get('server_cpu_ms_per_call'), '.3f')} | {x.get('errors') or ''} | "
                f"{x.get('loadavg_1m_after', '')} |"
            )
    lines += ["", "## Seeding", ""]
    for db in report["databases"]:
        s = db["seed"]
        lines.append(
            f"- {db['db']}: {s['events']:,} events and as many usage ledger entries over {report['users']:,} "
            f"users in {s['seed_seconds']} s (balance rows {s['balances_seconds']} s); database "
            f"{s['database_bytes'] / 2**30:.2f} GiB."
        )
    lines += ["", report["notes"], ""]
    return "\n".join(lines)


NOTES = """Notes. `Debit` is an atomic debit: one write transaction that locks the user's balance row (`BEGIN
IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on PostgreSQL), checks available and the spend cap, expires due
credit, inserts the ledger entry, consumes credit lots and moves the balance, committed (fsynced on SQLite)
before the answer. Each call has a fresh idempotency key; amounts are 0.01 on users credited with 10⁹. The
"one user" figure sends every debit to the same user, so every call waits for the row lock of the one before.
`GetBalance` reads the user's balance row by primary key; its cost does not depend on the number of events,
which is why the events are seeded rather than ingested (ingest throughput is benchmarks/ingest.py's subject).
The no-op ceiling is `RegisterEvent` on benchmarks/noop_server.py with the same client, callers and channels.
Load comes from spawned client processes on the same 2-CPU machine as the server and the database.
`server CPU ms/call` is the user + system CPU of the server (its processes) and, on PostgreSQL, of the
backends serving its database, over the measured window, per call completed in it: on a shared machine the
rates follow the other load, the CPU a call costs much less, so compare runs by it."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--users", type=int, default=1000, help="debit targets (credited first)")
    parser.add_argument(
        "--event-users", type=int, default=100_000, help="users the seeded events spread over"
    )
    parser.add_argument("--events", type=int, default=TARGET_EVENTS)
    parser.add_argument("--seed-seconds", type=float, default=120)
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", default=None, help="results file stem (default wallets-<date>)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    args = parser.parse_args()

    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_info(args.pg_url if "postgres" in dbs else None),
        "users": args.event_users,
        "debit_users": args.users,
        "concurrency": args.concurrency,
        "databases": [],
        "notes": NOTES,
    }
    work = Path(tempfile.mkdtemp(prefix="scrawn-wallet-bench-"))
    noop_port = free_port()
    noop = start(
        [sys.executable, str(BENCH_DIR / "noop_server.py"), "--port", str(noop_port)],
        dict(os.environ),
        work / "noop.log",
        noop_port,
    )
    common = {"concurrency": args.concurrency, "procs": args.client_procs, "warmup": args.warmup}
    try:
        for db in dbs:
            data_dir = work / db
            data_dir.mkdir()
            pg_name = None
            if db == "sqlite":
                url = f"sqlite:///{data_dir / 'scrawn.db'}"
            else:
                pg_name = f"scrawn_bench_{uuid.uuid4().hex[:10]}"
                pg_admin(args.pg_url, f'CREATE DATABASE "{pg_name}"')
                url = args.pg_url.rsplit("/", 1)[0] + "/" + pg_name
            try:
                print(f"[{db}] bootstrap and seed (up to {args.seed_seconds:.0f} s)…", flush=True)
                project_id, key = bootstrap(url, data_dir)
                seed = (
                    seed_sqlite(
                        data_dir / "scrawn.db",
                        project_id,
                        args.event_users,
                        args.seed_seconds,
                        args.events,
                        args.chunk,
                    )
                    if db == "sqlite"
                    else seed_postgres(
                        url, project_id, args.event_users, args.seed_seconds, args.events, args.chunk
                    )
                )
                print(f"[{db}] seeded {seed}", flush=True)
                server, port = start_scrawn(url, data_dir)
                target = f"127.0.0.1:{port}"
                serving = functools.partial(cpu_seconds, server.pid, args.pg_url, pg_name)
                noop_cpu = functools.partial(cpu_seconds, noop.pid)
                try:
                    credit_users(target, key, args.users)
                    results = []
                    print(f"[{db}] no-op ceiling", flush=True)
                    results.append(
                        measure(
                            "noop",
                            f"127.0.0.1:{noop_port}",
                            key,
                            args.users,
                            seconds=args.seconds,
                            cpu=noop_cpu,
                            **common,
                        )
                    )
                    print(f"[{db}] debits over {args.users} users", flush=True)
                    results.append(
                        measure("debit", target, key, args.users, seconds=args.seconds, cpu=serving, **common)
                    )
                    print(f"[{db}] debits on one user", flush=True)
                    hot = measure("debit", target, key, 1, seconds=args.seconds, cpu=serving, **common)
                    results.append(hot | {"hot": True})
                    print(f"[{db}] GetBalance, one caller", flush=True)
                    results.append(sequential_lookups(target, key, args.event_users, args.lookups, serving))
                    print(f"[{db}] GetBalance, {args.concurrency} callers", flush=True)
                    results.append(
                        measure(
                            "balance",
                            target,
                            key,
                            args.event_users,
                            seconds=args.seconds,
                            cpu=serving,
                            **common,
                        )
                    )
                    for r in results:
                        print(f"[{db}] {json.dumps(r)}", flush=True)
                finally:
                    stop(server)
                report["databases"].append({"db": db, "seed": seed, "measurements": results})
            finally:
                if pg_name:
                    pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    finally:
        stop(noop)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)  # the seeded SQLite database takes gigabytes
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = args.out or f"wallets-{report['date']}"
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {RESULTS_DIR / stem}.md and .json")


if __name__ == "__main__":
    main()
