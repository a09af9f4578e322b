"""The upstream Scrawn backend (TypeScript: Bun, grpc-js, Drizzle, PostgreSQL) beside ``scrawn serve`` on
PostgreSQL and the grpc-js no-op, all driven by ingest.py's load generator in one run.

    python benchmarks/upstream.py --upstream-dir /tmp/upstream --bun /tmp/bun/.../bin/bun

The upstream checkout must be prepared beforehand (``bun install``; see benchmarks/README.md): nothing is
downloaded here. Results go to ``benchmarks/results/upstream-<date>.json`` and ``.md``.

Every server gets the same requests, in the shape the upstream accepts: ``userId`` and ``eventId`` are UUIDs
(its zod schema rejects anything else), ``reportedTimestamp`` is now, and StreamEvents carries
AI_TOKEN_USAGE events (the upstream's StreamEvents fails BASIC_USAGE items as UNSUPPORTED_EVENT_TYPE).
RegisterEvent sends BASIC_USAGE with an amount debit, as ingest.py does.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import ingest  # noqa: E402

HMAC_SECRET = "bench-hmac-secret-" + "y" * 16
KEY_ID = "11111111-1111-4111-8111-111111111111"
USER_IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"scrawn-bench-user-{i}")) for i in range(ingest.USERS)]
KINDS = ("unary-grpc", "stream-grpc")


# ----------------------------------------------------------------------------------------------------
# Client side: ingest.py's load loop (_load) with the requests reshaped for the upstream
# ----------------------------------------------------------------------------------------------------


def _worker_run(spec: dict[str, Any]) -> dict[str, Any]:
    """ingest._worker_run with its gRPC requests and stream answers reshaped (in this worker process only)."""
    ingest.register_request = _register_request
    ingest.stream_item = _stream_item
    ingest._stream_outcome = _stream_outcome
    return ingest._worker_run(spec)


def _register_request(pb: Any, rng: random.Random, key: str) -> Any:
    return pb.RegisterEventRequest(
        type=pb.BASIC_USAGE,
        userId=rng.choice(USER_IDS),
        reportedTimestamp=int(time.time()),
        eventId=str(uuid.uuid4()),
        basicUsage=pb.BasicUsage(basicUsageType=pb.RAW, amount=rng.randint(1, 100)),
        idempotencyKey=key,
    )


def _stream_item(pb: Any, rng: random.Random, key: str) -> Any:
    return pb.StreamEventRequest(
        type=pb.AI_TOKEN_USAGE,
        userId=rng.choice(USER_IDS),
        reportedTimestamp=int(time.time()),
        eventId=str(uuid.uuid4()),
        aiTokenUsage=pb.AITokenUsage(
            model="bench-model",
            inputTokens=rng.randint(1, 1000),
            outputTokens=rng.randint(1, 1000),
            inputAmount=rng.randint(1, 100),
            outputAmount=rng.randint(1, 100),
        ),
        idempotencyKey=key,
    )


def _stream_outcome(
    spec: dict[str, Any], res: Any, batch: int, t0: float, t1: float, record: Any, failed: Any
) -> None:
    """Count what a StreamEvents answer acknowledges. Scrawn's ``eventsProcessed`` counts every item read,
    failed ones included; the upstream's counts only the stored ones (its items are processed + failed); the
    no-ops count what they read and fail nothing."""
    ok = res.eventsProcessed - res.eventsFailed if res.eventsProcessed == batch else res.eventsProcessed
    if res.eventsFailed:
        first = res.failures[0] if res.failures else None
        failed("ITEMS_FAILED", f"{res.eventsFailed} of {batch}: {first.errorCode if first else ''}")
    if ok + res.eventsFailed < batch:
        failed("SHORT_STREAM", f"server answered for {ok + res.eventsFailed} of {batch}")
    record(t0, t1, ok)


# ----------------------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------------------


def _wait_log(process: subprocess.Popen[bytes], log: Path, text: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{ingest._tail(log)}")
        time.sleep(0.05)


def start_grpcjs_on(runtime: str, name: str, work: Path) -> ingest.Server:
    """benchmarks/noop_grpcjs.mjs (tests/ts's grpc-js) under ``runtime``: node, or bun (the upstream's)."""
    port = ingest.free_port()
    log = work / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [runtime, str(BENCH_DIR / "noop_grpcjs.mjs"), str(port)], stdout=out, stderr=out
        )
    _wait_log(process, log, "ready", name)
    return ingest.Server(name, port, process, log)


def _run_sql(url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            for sql, params in statements:
                await conn.execute(sql, *params)
        finally:
            await conn.close()

    asyncio.run(run())


def upstream_key() -> tuple[str, str]:
    """A production key in the upstream's format (``scrn_live_`` + 32 alphanumerics) and its stored form:
    HMAC-SHA256 with HMAC_SECRET, hex (src/utils/hashAPIKey.ts)."""
    import hashlib
    import hmac
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits
    key = "scrn_live_" + "".join(secrets.choice(alphabet) for _ in range(32))
    return key, hmac.new(HMAC_SECRET.encode(), key.encode(), hashlib.sha256).hexdigest()


def start_upstream(
    upstream_dir: Path, bun: str, database_url: str, work: Path, log_level: str
) -> ingest.Server:
    """Create the upstream's schema with its own ``drizzle-kit push``, store a live key and the webhook
    endpoint its auth interceptor requires before ingest, then ``bun run src/server.ts``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "GRPC_PORT", "SENTRY_DSN")}
    env |= {"DATABASE_URL": database_url, "HMAC_SECRET": HMAC_SECRET, "NODE_ENV": "production"}
    push = subprocess.run(
        [bun, "x", "drizzle-kit", "push", "--force"],
        cwd=upstream_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if push.returncode != 0:
        raise RuntimeError(f"drizzle-kit push failed:\n{push.stdout[-2000:]}\n{push.stderr[-2000:]}")
    key, digest = upstream_key()
    _run_sql(
        database_url,
        [
            (
                "INSERT INTO api_keys (id, name, key, role, expires_at) "
                "VALUES ($1, 'bench', $2, 'production', now() + interval '1 year')",
                (KEY_ID, digest),
            ),
            (
                "INSERT INTO webhook_endpoints (api_key_id, url, private_key, public_key) "
                "VALUES ($1, 'http://127.0.0.1:9/unused', 'unused', 'unused')",
                (KEY_ID,),
            ),
        ],
    )
    port = ingest.free_port()
    env |= {"GRPC_PORT": str(port), "PORT": str(ingest.free_port()), "LOG_LEVEL": log_level}
    log = work / "upstream.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [bun, "run", "src/server.ts"], cwd=upstream_dir, env=env, stdout=out, stderr=out
        )
    server = ingest.Server("upstream", port, process, log, key=key, database_url=database_url)
    deadline = time.monotonic() + 60  # no readiness endpoint on the gRPC port: wait for the listener
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"upstream did not start:\n{ingest._tail(log)}") from None
            time.sleep(0.1)
    return server


def count_upstream(server: ingest.Server, prefix: str) -> int:
    rows = ingest.pg_admin(
        server.database_url,
        f"SELECT (SELECT count(*) FROM basic_usage_events WHERE idempotency_key LIKE '{prefix}-%') + "
        f"(SELECT count(*) FROM ai_token_usage_events WHERE idempotency_key LIKE '{prefix}-%') AS n",
    )
    return int(rows[0]["n"])


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _upstream_commit(upstream_dir: Path) -> str | None:
    """A COMMIT file (written when the checkout came from ``git archive``), else the checkout's git HEAD."""
    marker = upstream_dir / "COMMIT"
    return marker.read_text().strip() if marker.exists() else _git(["rev-parse", "HEAD"], upstream_dir)


def _version(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _package_version(root: Path, name: str) -> str | None:
    try:
        return str(json.loads((root / "node_modules" / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    info, up, opts = report["machine"], report["upstream"], report["options"]
    f = ingest._f
    out = [
        f"# Upstream backend vs scrawn serve — {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}, "
        f"{str(info.get('postgresql', '')).split(' on ')[0]}. Load average at start: "
        + ", ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
        + "; at end: "
        + ", ".join(f"{x:.2f}" for x in report["loadavg_at_end"])
        + ".",
        "",
        f"Scrawn: HEAD `{info.get('git_commit')}` (src sha256 `{info.get('src_sha256')}`), "
        f"`scrawn serve` on {info.get('server_stack')}, one worker, log level warning. Upstream: "
        f"ScrawnDotDev/Scrawn commit `{up['commit']}`, Bun {up['bun']}, @grpc/grpc-js {up['grpc_js']}, "
        f"drizzle-orm {up['drizzle_orm']}, postgres (postgres.js) {up['postgres_js']}; NODE_ENV=production, "
        f"LOG_LEVEL={up['log_level']}, schema from its `drizzle-kit push`. grpc-js no-op: "
        f"benchmarks/noop_grpcjs.mjs with tests/ts's @grpc/grpc-js {up['noop_grpc_js']}, on Node "
        f"{up['node']} and on the same Bun.",
        "",
        f"Load: ingest.py's load generator, {opts['seconds']:g} s measured after {opts['warmup']:g} s "
        f"warm-up; RegisterEvent: {opts['concurrency']} callers over {opts['channels']} grpcio channels, "
        f"BASIC_USAGE with an amount; StreamEvents: {opts['streams']} concurrent calls of {opts['batch']} "
        f"AI_TOKEN_USAGE events each. userId (one of {ingest.USERS}) and eventId are UUIDs, every "
        "idempotency key unique, the same requests for every server. Client, servers and PostgreSQL share "
        "the machine.",
        "",
        "`us/event`: CPU per acknowledged event from /proc, the server process (all threads) and, "
        "separately, the PostgreSQL backends of its database. `stored/acked`: rows carrying the "
        "measurement's key prefix / events the server acknowledged.",
        "",
        "| measurement | server | events/s | p50 ms | p99 ms | errors | server us/event | db us/event "
        "| cpu server | cpu db | cpu client | cpu other | stored/acked |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in report["measurements"]:
        errs = ", ".join(f"{k} {v}" for k, v in m["errors"].items()) or "0"
        stored = f"{m['stored']}/{m['acked']}" if m["stored"] is not None else "–"
        out.append(
            f"| {m['kind']} | {m['server']} | {f(m['events_per_s'])} | {f(m['p50_ms'], '.1f')} | "
            f"{f(m['p99_ms'], '.1f')} | {errs} | {f(m['server_us_per_event'])} | {f(m['db_us_per_event'])} | "
            f"{m['server_cpu']:.2f} | {f(m['db_cpu'], '.2f')} | {m['client_cpu']:.2f} | "
            f"{m['other_cpu']:.2f} | {stored} |"
        )
    samples = [(m["kind"], m["server"], s) for m in report["measurements"] for s in m["error_samples"]]
    if samples:
        out += ["", "Error samples:", ""] + [f"- {k} {s}: `{e[:300]}`" for k, s, e in samples[:12]]
    if report["failures"]:
        out += ["", "Failures:", ""] + [f"- {k}: `{v}`" for k, v in report["failures"].items()]
    if report.get("notes"):
        out += ["", report["notes"].rstrip()]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="The upstream backend beside scrawn serve (PostgreSQL).")
    parser.add_argument("--upstream-dir", type=Path, help="ScrawnDotDev/Scrawn, bun-installed")
    parser.add_argument("--bun", help="the bun executable")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated: unary-grpc, stream-grpc")
    parser.add_argument(
        "--servers",
        default="grpc-js,grpc-js-bun,noop,scrawn,upstream",
        help="grpc-js (Node), grpc-js-bun, noop (our no-op, hypercorn), scrawn, upstream",
    )
    parser.add_argument(
        "--upstream-log-level", default="warn", help="its LOG_LEVEL (pino; its default: info)"
    )
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", default=None, help="results file stem (default upstream-<date>)")
    parser.add_argument("--notes-file", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, metavar="JSON", help="only re-render the .md")
    args = parser.parse_args()
    notes = args.notes_file.read_text() if args.notes_file else ""
    if args.render is not None:
        report = json.loads(args.render.read_text())
        if notes:
            report["notes"] = notes
            args.render.write_text(json.dumps(report, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(markdown(report))
        return

    if args.upstream_dir is None or args.bun is None:
        parser.error("--upstream-dir and --bun are required")
    upstream_dir = args.upstream_dir.resolve()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    opts = ingest.Options(
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        channels=args.channels,
        client_procs=1,
        connect_codec="proto",
        callers_per_client=1,
        batch=args.batch,
        streams=args.streams,
        profile="",
    )
    date = dt.date.today().isoformat()
    stem = args.out or f"upstream-{date}"
    command = "python " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(__file__, ingest.ROOT), *sys.argv[1:]]
    )
    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="scrawn-upstream-"))
    info = ingest.machine_info(args.pg_url)
    upstream_info = {
        "commit": _upstream_commit(upstream_dir),
        "bun": _version([args.bun, "--version"]),
        "node": _version(["node", "--version"]),
        "grpc_js": _package_version(upstream_dir, "@grpc/grpc-js"),
        "drizzle_orm": _package_version(upstream_dir, "drizzle-orm"),
        "postgres_js": _package_version(upstream_dir, "postgres"),
        "noop_grpc_js": _package_version(ingest.ROOT / "tests/ts", "@grpc/grpc-js"),
        "log_level": args.upstream_log_level,
    }
    print(f"{command}\nloadavg {info['loadavg_at_start']}, upstream {upstream_info}", flush=True)

    ingest._worker_run = _worker_run  # measure() submits this module's worker: the reshaped requests
    measurements: list[ingest.Measurement] = []
    failures: dict[str, str] = {}
    servers: list[ingest.Server] = []
    databases: list[str] = []
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
    try:
        pool.submit(ingest._worker_warm).result()
        for name in names:
            try:
                if name == "grpc-js":
                    servers.append(start_grpcjs_on(shutil.which("node") or "node", name, work))
                elif name == "grpc-js-bun":
                    servers.append(start_grpcjs_on(args.bun, name, work))
                elif name == "noop":
                    servers.append(ingest.start_noop(work))
                elif name in ("scrawn", "upstream"):
                    db = f"{'scrawn' if name == 'scrawn' else 'upstream'}_bench_{run_id}"
                    ingest.pg_admin(args.pg_url, f'CREATE DATABASE "{db}"')
                    databases.append(db)
                    url = ingest.pg_url_for(args.pg_url, db)
                    data_dir = work / name
                    data_dir.mkdir()
                    if name == "scrawn":
                        servers.append(ingest.start_scrawn(url, data_dir))
                    else:
                        servers.append(
                            start_upstream(upstream_dir, args.bun, url, data_dir, args.upstream_log_level)
                        )
                else:
                    parser.error(f"unknown server {name}")
            except Exception as e:  # recorded; the other servers still run
                failures[name] = str(e)[-2000:]
                print(f"  {name} did not start: {failures[name]}", flush=True)
        for kind in kinds:
            for server in servers:
                m = ingest.measure(pool, opts, "postgres", kind, server, run_id, None)
                if server.name == "upstream":
                    m.stored = count_upstream(server, f"b{run_id}-po-{kind}-{server.name}")
                measurements.append(m)
                print(ingest.describe(m), flush=True)
    finally:
        for server in servers:
            server.stop()
            if server.name == "upstream":
                print(f"  upstream log tail:\n{ingest._tail(server.log, 10)}")
        for db in databases:
            ingest.pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        pool.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "benchmark": "upstream",
        "date": date,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": info,
        "upstream": upstream_info,
        "options": opts.__dict__,
        "measurements": [m.__dict__ for m in measurements],
        "failures": failures,
        "loadavg_at_end": list(os.getloadavg()),
        "notes": notes,
    }
    ingest.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (ingest.RESULTS_DIR / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (ingest.RESULTS_DIR / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {ingest.RESULTS_DIR / stem}.json and .md")


if __name__ == "__main__":
    main()
