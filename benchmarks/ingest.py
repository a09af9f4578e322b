"""Ingest benchmark (DESIGN §10): RegisterEvent over gRPC and Connect with concurrent callers, and batched
ingest through StreamEvents, against a real ``scrawn serve`` on SQLite and on PostgreSQL, each figure beside
the no-op ceiling of the same server stack (``benchmarks/noop_server.py``) measured in the same run.

    python benchmarks/ingest.py [--db sqlite|postgres|both] [--seconds N] [--concurrency 64]

Results go to ``benchmarks/results/ingest-<date>[-<db>].json`` and ``.md``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import platform
import random
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The code under test: the working tree, or a snapshot chosen with --git-ref/--src (inherited by the load
# processes and the servers through SCRAWN_BENCH_SRC / PYTHONPATH).
SRC = Path(os.environ.get("SCRAWN_BENCH_SRC") or ROOT / "src")
sys.path.insert(0, str(SRC))
SERVER_ENTRY = ["-m", "scrawn.server.cli"]  # --server-wrapper replaces it with a script path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SECRET = "bench-secret-" + "x" * 24
REGISTER = "/event.v1.EventService/RegisterEvent"
STREAM = "/event.v1.EventService/StreamEvents"
TRACK = "/usage.v1.UsageService/TrackEvents"
TRACK_TYPE = "bench.call"  # priced by quantity in the benchmark project
USERS = 1000  # events are spread over this many user ids (balance rows)
TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0  # DESIGN §10 (the 2026-12-04 results were checked against the earlier 100 ms)
TARGET_BATCH_EVENTS_PER_S = 30_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
STACK = "hypercorn"  # --server: what serves scrawn and the no-op (SCRAWN_SERVER)


# ----------------------------------------------------------------------------------------------------
# Load generation: in spawned worker processes, so the driver's own work never competes with the clients
# ----------------------------------------------------------------------------------------------------


def _worker_warm() -> int:
    import grpc  # noqa: F401
    import httpx  # noqa: F401

    from scrawn._proto.event.v1 import event_pb2  # noqa: F401

    time.sleep(0.3)
    return os.getpid()


def _worker_run(spec: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_load(spec))


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one client process's share of a measurement: ``callers`` coroutines that call back to back from
    ``start_at`` until ``end_at`` (monotonic clock, shared by every process on the machine); only calls that
    complete inside [window_start, end_at] are counted. Calls in flight at the end are awaited, not
    cancelled."""
    loop = asyncio.get_running_loop()
    start_at, window_start, end_at = spec["start_at"], spec["window_start"], spec["end_at"]
    latencies: list[float] = []
    events_in_window = 0
    calls_in_window = 0
    acked_total = 0  # events the server acknowledged at any time in this run (checked against the database)
    errors: Counter[str] = Counter()
    error_samples: list[str] = []
    cpu: dict[str, float] = {}
    loop.call_at(
        loop.time() + max(0.0, window_start - time.monotonic()),
        lambda: cpu.__setitem__("start", time.process_time()),
    )
    loop.call_at(
        loop.time() + max(0.0, end_at - time.monotonic()), lambda: cpu.__setitem__("end", time.process_time())
    )

    def record(t0: float, t1: float, events: int) -> None:
        nonlocal events_in_window, calls_in_window, acked_total
        acked_total += events
        if window_start <= t1 <= end_at:
            latencies.append(t1 - t0)
            events_in_window += events
            calls_in_window += 1

    def failed(code: str, message: str) -> None:
        errors[code] += 1
        if len(error_samples) < 5:
            error_samples.append(f"{code}: {message[:300]}")

    prefix = spec["key_prefix"]
    rng = random.Random(spec["seed"])
    kind = spec["kind"]
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    if kind == "unary-grpc":
        await _grpc_unary(spec, prefix, rng, record, failed)
    elif kind == "unary-connect":
        await _connect_unary(spec, prefix, rng, record, failed)
    elif kind == "unary-connect-raw":
        await _connect_unary_raw(spec, prefix, rng, record, failed)
    elif kind == "stream-grpc":
        await _grpc_stream(spec, prefix, rng, record, failed)
    elif kind == "stream-connect":
        await _connect_stream(spec, prefix, rng, record, failed)
    elif kind == "track-grpc":
        await _grpc_track(spec, prefix, rng, record, failed)
    else:
        raise ValueError(kind)
    return {
        "latencies": latencies,
        "events_in_window": events_in_window,
        "calls_in_window": calls_in_window,
        "acked_total": acked_total,
        "errors": dict(errors),
        "error_samples": error_samples,
        "cpu_seconds": cpu.get("end", time.process_time()) - cpu.get("start", 0.0),
    }


def _basic(pb: Any, rng: random.Random) -> Any:
    return pb.BasicUsage(basicUsageType=pb.RAW, amount=rng.randint(1, 100))


# The gRPC requests' shape: benchmarks/upstream.py replaces these two (and _stream_outcome) in its workers.
def register_request(pb: Any, rng: random.Random, key: str) -> Any:
    return pb.RegisterEventRequest(
        type=pb.BASIC_USAGE,
        userId=f"user-{rng.randrange(USERS)}",
        basicUsage=_basic(pb, rng),
        idempotencyKey=key,
    )


def stream_item(pb: Any, rng: random.Random, key: str) -> Any:
    return pb.StreamEventRequest(
        type=pb.BASIC_USAGE,
        userId=f"user-{rng.randrange(USERS)}",
        basicUsage=_basic(pb, rng),
        idempotencyKey=key,
    )


async def _grpc_unary(
    spec: dict[str, Any], prefix: str, rng: random.Random, record: Any, failed: Any
) -> None:
    import grpc

    from scrawn._proto.event.v1 import event_pb2 as pb

    metadata_ = (("authorization", f"Bearer {spec['key']}"),)
    # A local subchannel pool per channel: each channel is its own HTTP/2 connection.
    channels = [
        grpc.aio.insecure_channel(spec["target"], options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(spec["channels"])
    ]
    stubs = [
        ch.unary_unary(
            REGISTER,
            request_serializer=pb.RegisterEventRequest.SerializeToString,
            response_deserializer=pb.RegisterEventResponse.FromString,
        )
        for ch in channels
    ]
    try:
        for ch in channels:
            await ch.channel_ready()

        async def caller(n: int) -> None:
            stub, seq = stubs[n % len(stubs)], 0
            while time.monotonic() < spec["end_at"]:
                request = register_request(pb, rng, f"{prefix}-{n}-{seq}")
                seq += 1
                t0 = time.monotonic()
                try:
                    await stub(request, metadata=metadata_, timeout=30)
                except grpc.aio.AioRpcError as e:
                    failed(e.code().name, e.details() or "")
                    continue
                record(t0, time.monotonic(), 1)

        await asyncio.gather(*(caller(n) for n in range(spec["callers"])))
    finally:
        for ch in channels:
            await ch.close()


def _register_body(pb: Any, rng: random.Random, key: str, binary: bool) -> bytes:
    user, amount = f"user-{rng.randrange(USERS)}", rng.randint(1, 100)
    if binary:
        return bytes(
            pb.RegisterEventRequest(
                type=pb.BASIC_USAGE,
                userId=user,
                idempotencyKey=key,
                basicUsage=pb.BasicUsage(basicUsageType=pb.RAW, amount=amount),
            ).SerializeToString()
        )
    return json.dumps(
        {
            "type": "BASIC_USAGE",
            "userId": user,
            "idempotencyKey": key,
            "basicUsage": {"basicUsageType": "RAW", "amount": amount},
        }
    ).encode()


def _connect_error(failed: Any, status: int, body: bytes) -> None:
    try:
        err = json.loads(body)
        failed(str(err.get("code", status)).upper(), err.get("message", ""))
    except ValueError:
        failed(f"HTTP_{status}", body[:300].decode(errors="replace"))


async def _connect_unary(
    spec: dict[str, Any], prefix: str, rng: random.Random, record: Any, failed: Any
) -> None:
    """Connect unary through httpx.AsyncClient over HTTP/1.1. httpcore's pool scans every connection for every
    request (cost grows with connections x waiters), so callers share small clients: ``callers_per_client``
    callers, and as many keep-alive connections, per AsyncClient (default: one client and connection each)."""
    import httpx

    from scrawn._proto.event.v1 import event_pb2 as pb

    binary = spec["connect_codec"] == "proto"
    headers = {
        "authorization": f"Bearer {spec['key']}",
        "content-type": "application/proto" if binary else "application/json",
    }
    per = max(1, spec["callers_per_client"])
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
    clients = [
        httpx.AsyncClient(base_url=spec["base_url"], limits=limits, timeout=30)
        for _ in range((spec["callers"] + per - 1) // per)
    ]
    try:

        async def caller(n: int) -> None:
            http, seq = clients[n // per], 0
            while time.monotonic() < spec["end_at"]:
                body = _register_body(pb, rng, f"{prefix}-{n}-{seq}", binary)
                seq += 1
                t0 = time.monotonic()
                try:
                    res = await http.post(REGISTER, content=body, headers=headers)
                except httpx.HTTPError as e:
                    failed(type(e).__name__, str(e))
                    continue
                t1 = time.monotonic()
                if res.status_code != 200:
                    _connect_error(failed, res.status_code, res.content)
                    continue
                if binary:
                    pb.RegisterEventResponse.FromString(res.content)
                else:
                    json.loads(res.content)
                record(t0, t1, 1)

        await asyncio.gather(*(caller(n) for n in range(spec["callers"])))
    finally:
        for http in clients:
            await http.aclose()


async def _read_http_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response (Content-Length or chunked) from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return status, bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _connect_unary_raw(
    spec: dict[str, Any], prefix: str, rng: random.Random, record: Any, failed: Any
) -> None:
    """Connect unary over HTTP/1.1 keep-alive connections written by hand on asyncio streams: the cheapest
    Python client, so the figure shows the server rather than httpx (which costs ~0.7 ms of CPU a call)."""
    from scrawn._proto.event.v1 import event_pb2 as pb

    binary = spec["connect_codec"] == "proto"
    host = spec["base_url"].split("://", 1)[1]
    address, port = host.rsplit(":", 1)
    head = (
        f"POST {REGISTER} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {spec['key']}\r\n"
        f"content-type: {'application/proto' if binary else 'application/json'}\r\n"
    ).encode()

    async def caller(n: int) -> None:
        reader, writer = await asyncio.open_connection(address, int(port))
        seq = 0
        try:
            while time.monotonic() < spec["end_at"]:
                body = _register_body(pb, rng, f"{prefix}-{n}-{seq}", binary)
                seq += 1
                t0 = time.monotonic()
                writer.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
                try:
                    status, content = await _read_http_response(reader)
                except (OSError, asyncio.IncompleteReadError) as e:
                    failed(type(e).__name__, str(e))
                    writer.close()
                    reader, writer = await asyncio.open_connection(address, int(port))
                    continue
                t1 = time.monotonic()
                if status != 200:
                    _connect_error(failed, status, content)
                    continue
                if binary:
                    pb.RegisterEventResponse.FromString(content)
                else:
                    json.loads(content)
                record(t0, t1, 1)
        finally:
            writer.close()

    await asyncio.gather(*(caller(n) for n in range(spec["callers"])))


async def _connect_stream(
    spec: dict[str, Any], prefix: str, rng: random.Random, record: Any, failed: Any
) -> None:
    """StreamEvents over Connect via httpx: HTTP/1.1, binary envelopes, the whole batch in one body."""
    import struct

    import httpx

    from scrawn._proto.event.v1 import event_pb2 as pb

    headers = {"authorization": f"Bearer {spec['key']}", "content-type": "application/connect+proto"}
    batch = spec["batch"]
    clients = [
        httpx.AsyncClient(
            base_url=spec["base_url"],
            timeout=120,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for _ in range(spec["streams"])
    ]
    try:

        async def caller(n: int) -> None:
            http, seq = clients[n], 0
            while time.monotonic() < spec["end_at"]:
                parts = []
                for i in range(batch):
                    payload = pb.StreamEventRequest(
                        type=pb.BASIC_USAGE,
                        userId=f"user-{rng.randrange(USERS)}",
                        basicUsage=_basic(pb, rng),
                        idempotencyKey=f"{prefix}-{n}-{seq + i}",
                    ).SerializeToString()
                    parts.append(struct.pack(">BI", 0, len(payload)) + payload)
                seq += batch
                t0 = time.monotonic()
                try:
                    res = await http.post(STREAM, content=b"".join(parts), headers=headers)
                except httpx.HTTPError as e:
                    failed(type(e).__name__, str(e))
                    continue
                t1 = time.monotonic()
                data, i, message = res.content, 0, None
                while i + 5 <= len(data):
                    flags, size = struct.unpack(">BI", data[i : i + 5])
                    payload = data[i + 5 : i + 5 + size]
                    i += 5 + size
                    if flags & 0x02:
                        end = json.loads(payload or b"{}")
                        if "error" in end:
                            failed(
                                end["error"].get("code", "unknown").upper(), end["error"].get("message", "")
                            )
                    else:
                        message = pb.StreamEventResponse.FromString(payload)
                if res.status_code != 200 or message is None:
                    if res.status_code != 200:
                        _connect_error(failed, res.status_code, res.content)
                    continue
                _stream_outcome(spec, message, batch, t0, t1, record, failed)

        await asyncio.gather(*(caller(n) for n in range(spec["streams"])))
    finally:
        for http in clients:
            await http.aclose()


def _stream_outcome(
    spec: dict[str, Any], res: Any, batch: int, t0: float, t1: float, record: Any, failed: Any
) -> None:
    if res.eventsFailed:
        failed(
            "ITEMS_FAILED",
            f"{res.eventsFailed} of {batch}: {res.message}; "
            f"first: {res.failures[0].errorCode} {res.failures[0].message}",
        )
    if spec["noop"]:
        ok = res.eventsProcessed  # the no-op server only counts what it read
    else:
        ok = res.eventsProcessed - res.eventsFailed
        if res.eventsProcessed != batch:
            failed("SHORT_STREAM", f"server processed {res.eventsProcessed} of {batch}")
    record(t0, t1, ok)


async def _grpc_batches(
    spec: dict[str, Any], stub_on: Any, request: Any, call: Any, done: Any, failed: Any
) -> None:
    """``spec["streams"]`` callers over ``spec["channels"]`` gRPC channels, one batch call after another
    until ``end_at``: ``stub_on(channel)`` makes a stub, ``request(n, seq)`` caller n's next batch from
    sequence number seq, ``call(stub, request)`` sends it, ``done(response, t0, t1)`` counts the answer."""
    import grpc

    channels = [
        grpc.aio.insecure_channel(spec["target"], options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(spec["channels"])
    ]
    stubs = [stub_on(ch) for ch in channels]
    try:
        for ch in channels:
            await ch.channel_ready()

        async def caller(n: int) -> None:
            stub, seq = stubs[n % len(stubs)], 0
            while time.monotonic() < spec["end_at"]:
                batch = request(n, seq)
                seq += spec["batch"]
                t0 = time.monotonic()
                try:
                    res = await call(stub, batch)
                except grpc.aio.AioRpcError as e:
                    failed(e.code().name, e.details() or "")
                    continue
                done(res, t0, time.monotonic())

        await asyncio.gather(*(caller(n) for n in range(spec["streams"])))
    finally:
        for ch in channels:
            await ch.close()


async def _grpc_stream(
    spec: dict[str, Any], prefix: str, rng: random.Random, record: Any, failed: Any
) -> None:
    from scrawn._proto.event.v1 import event_pb2 as pb

    metadata_ = (("authorization", f"Bearer {spec['key']}"),)
    batch = spec["batch"]

    def items(n: int, seq: int) -> list[Any]:
        return [stream_item(pb, rng, f"{prefix}-{n}-{seq + i}") for i in range(batch)]

    await _grpc_batches(
        spec,
        lambda ch: ch.stream_unary(
            STREAM,
            request_serializer=pb.StreamEventRequest.SerializeToString,
            response_deserializer=pb.StreamEventResponse.FromString,
        ),
        items,
        lambda stub, batch_: stub(iter(batch_), metadata=metadata_, timeout=120),
        lambda res, t0, t1: _stream_outcome(spec, res, batch, t0, t1, record, failed),
        failed,
    )


async def _grpc_track(
    spec: dict[str, Any], prefix: str, rng: random.Random, record: Any, failed: Any
) -> None:
    """TrackEvents (the SDK's ``track()`` batches): unary calls of ``batch`` typed events of TRACK_TYPE,
    which the benchmark project prices by quantity."""
    from scrawn._proto.usage.v1 import usage_pb2 as pb

    metadata_ = (("authorization", f"Bearer {spec['key']}"),)
    batch = spec["batch"]

    def request(n: int, seq: int) -> Any:
        return pb.TrackEventsRequest(
            events=[
                pb.TrackedEvent(
                    type=TRACK_TYPE,
                    userId=f"user-{rng.randrange(USERS)}",
                    quantity=str(rng.randint(1, 100)),
                    idempotencyKey=f"{prefix}-{n}-{seq + i}",
                )
                for i in range(batch)
            ]
        )

    def done(res: Any, t0: float, t1: float) -> None:
        if res.failed or res.quarantined:
            first = next((r for r in res.results if r.status in ("failed", "quarantined")), None)
            detail = f"{first.errorCode} {first.message}" if first else ""
            failed("ITEMS_FAILED", f"{res.failed} failed, {res.quarantined} kept of {batch}: {detail}")
        record(t0, t1, res.accepted + res.duplicates)

    await _grpc_batches(
        spec,
        lambda ch: ch.unary_unary(
            TRACK,
            request_serializer=pb.TrackEventsRequest.SerializeToString,
            response_deserializer=pb.TrackEventsResponse.FromString,
        ),
        request,
        lambda stub, req: stub(req, metadata=metadata_, timeout=120),
        done,
        failed,
    )


# ----------------------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not become ready:\n{_tail(log)}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    name: str  # "grpc-js", "noop" or "scrawn"
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    key: str = ""
    database_url: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_noop(work: Path) -> Server:
    port = free_port()
    log = work / "noop.log"
    argv = [sys.executable, str(BENCH_DIR / "noop_server.py"), "--port", str(port)]
    if STACK == "pyvoy":  # the same no-op app inside Envoy, as `scrawn serve` runs on pyvoy
        argv = [str(Path(sys.executable).parent / "pyvoy"), "noop_server:app", "--port", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out, cwd=BENCH_DIR)
    server = Server("noop", port, process, log)
    wait_ready(server.base_url, process, log)
    return server


def start_grpcjs(work: Path) -> Server | None:
    """The reference no-op (DESIGN §10): ``noop_grpcjs.mjs`` on Node with ``tests/ts``'s grpc-js (the
    upstream backend's stack), called by the same load generator; None where Node or grpc-js is missing."""
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/ts/node_modules/@grpc/grpc-js").is_dir():
        return None
    port = free_port()
    log = work / "grpcjs.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [node, str(BENCH_DIR / "noop_grpcjs.mjs"), str(port)], stdout=out, stderr=out
        )
    deadline = time.monotonic() + 30
    while "ready" not in _tail(log, 5):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the grpc-js no-op did not start:\n{_tail(log)}")
        time.sleep(0.05)
    return Server("grpc-js", port, process, log)


def use_src(src: Path) -> None:
    """Measure the package under ``src`` (a directory holding ``scrawn/``) instead of the working tree. Must
    run before anything imports scrawn."""
    global SRC
    if "scrawn" in sys.modules:
        raise RuntimeError("scrawn was imported before the source to measure was chosen")
    SRC = src.resolve()
    sys.path.insert(0, str(SRC))
    os.environ["SCRAWN_BENCH_SRC"] = str(SRC)


def export_git_ref(ref: str, into: Path) -> tuple[Path, str]:
    """``git archive`` the ref's src/ into ``into`` (read-only for the repository); returns (src, commit)."""
    import io
    import tarfile

    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    data = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src"], cwd=ROOT, capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src", commit


def start_scrawn(database_url: str, data_dir: Path) -> Server:
    """Migrate, create a project and a live key (as tests/conftest.py make_server does), then run
    ``python -m scrawn.server.cli serve`` with the SCRAWN_* environment."""
    from scrawn.server.config import Settings
    from scrawn.server.db.engine import Database
    from scrawn.server.keys.service import KeyService
    from scrawn.server.pricing import service as catalog
    from scrawn.server.projects.service import bootstrap

    settings = Settings(data_dir=data_dir, database_url=database_url, secret=SECRET)

    async def setup() -> str:
        db = Database(settings.resolved_database_url)
        try:
            created = await bootstrap(db, settings, "bench", only_if_empty=False)
            assert created is not None
            async with db.write() as conn:
                _, key = await KeyService(db, SECRET).create_key(conn, created[0], "live", "bench")
                await catalog.put_event_price(conn, created[0], TRACK_TYPE, "mul(quantity(), 0.01)")
            return key
        finally:
            await db.dispose()

    key = asyncio.run(setup())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    env |= {
        "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p),
        "SCRAWN_PORT": str(port),
        "SCRAWN_DATA_DIR": str(data_dir),
        "SCRAWN_DATABASE_URL": database_url,
        "SCRAWN_SECRET": SECRET,
        "SCRAWN_LOG_LEVEL": "warning",
        "SCRAWN_SERVER": STACK,
        "SCRAWN_WORKERS": "1",  # one server process, as every recorded result (the default is one per CPU)
    }
    log = data_dir / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, *SERVER_ENTRY, "serve"],
            env=env,
            stdout=out,
            stderr=out,
            cwd=data_dir,
        )
    server = Server("scrawn", port, process, log, key=key, database_url=database_url)
    wait_ready(server.base_url, process, log)
    return server


def pg_admin(admin_url: str, sql: str) -> Any:
    import asyncpg

    async def run() -> Any:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def pg_url_for(admin_url: str, name: str) -> str:
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def count_stored(server: Server, prefix: str) -> int:
    """Events the database holds whose idempotency key carries this measurement's prefix."""
    like = f"{prefix}-%"
    if server.database_url.startswith("sqlite"):
        path = server.database_url.split(":///", 1)[1]
        with sqlite3.connect(path, timeout=60) as conn:
            return int(
                conn.execute("SELECT count(*) FROM events WHERE idempotency_key LIKE ?", (like,)).fetchone()[
                    0
                ]
            )
    rows = pg_admin(
        server.database_url, f"SELECT count(*) AS n FROM events WHERE idempotency_key LIKE '{like}'"
    )
    return int(rows[0]["n"])


# ----------------------------------------------------------------------------------------------------
# CPU accounting
# ----------------------------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of PID's threads and of its live descendants (pyvoy's Envoy is a child process)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def proc_rss_mb(pid: int) -> float:
    """Resident memory of PID and its live descendants, in MB (VmRSS)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
            total += int(rss[0]) if rss else 0  # kernel threads and zombies have none
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total / 1024


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def pg_backend_pids(server: Server) -> list[int]:
    if not server.database_url.startswith("postgres"):
        return []
    name = server.database_url.rsplit("/", 1)[1]
    rows = pg_admin(
        server.database_url,
        f"SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    return [int(r["pid"]) for r in rows]


# ----------------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------------


@dataclass
class Options:
    seconds: float
    warmup: float
    concurrency: int
    channels: int
    client_procs: int
    connect_codec: str
    callers_per_client: int
    batch: int
    streams: int
    profile: str  # "", or the py-spy executable


@dataclass
class Measurement:
    db: str
    kind: str  # unary-grpc | unary-connect | stream-grpc | stream-connect | track-grpc
    server: str  # grpc-js | noop | scrawn
    seconds: float
    events: int
    calls: int
    events_per_s: float
    calls_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    errors: dict[str, int]
    error_samples: list[str]
    server_cpu: float  # cores used by the server process during the window
    db_cpu: float | None  # cores used by this run's PostgreSQL backends
    client_cpu: float  # cores used by the load generator processes
    machine_busy: float  # cores busy on the whole machine
    other_cpu: float  # busy cores not accounted to us: other work on the machine (noise)
    server_us_per_event: float | None = None  # server CPU per event: less sensitive to CPU contention
    db_us_per_event: float | None = None
    acked: int = 0
    stored: int | None = None
    rss_mb: list[float] = field(default_factory=list)  # the server's RSS (process tree), once a second
    extra: dict[str, Any] = field(default_factory=dict)


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i] * 1000


def measure(
    pool: concurrent.futures.ProcessPoolExecutor,
    opts: Options,
    db: str,
    kind: str,
    server: Server,
    run_id: str,
    profile_dir: Path | None,
) -> Measurement:
    procs = opts.client_procs
    start_at = time.monotonic() + 0.5
    window_start = start_at + opts.warmup
    end_at = window_start + opts.seconds
    prefix = f"b{run_id}-{db[:2]}-{kind}-{server.name}"
    specs = []
    for p in range(procs):
        share = opts.concurrency // procs + (1 if p < opts.concurrency % procs else 0)
        stream_share = opts.streams // procs + (1 if p < opts.streams % procs else 0)
        specs.append(
            {
                "kind": kind,
                "target": server.target,
                "base_url": server.base_url,
                "key": server.key or "none",
                "start_at": start_at,
                "window_start": window_start,
                "end_at": end_at,
                "callers": share,
                "streams": max(1, stream_share),
                "channels": max(1, opts.channels // procs),
                "connect_codec": opts.connect_codec,
                "callers_per_client": opts.callers_per_client,
                "batch": opts.batch,
                "noop": server.name == "noop",
                "key_prefix": f"{prefix}-p{p}",
                "seed": hash((run_id, kind, server.name, p)) & 0xFFFFFFFF,
            }
        )
    futures = [pool.submit(_worker_run, s) for s in specs]

    spy: subprocess.Popen[bytes] | None = None
    time.sleep(max(0.0, window_start - time.monotonic()))
    pg_pids = pg_backend_pids(server)
    busy0, total0 = machine_cpu()
    server0 = proc_cpu_seconds(server.process.pid)
    pg0 = {pid: proc_cpu_seconds(pid) for pid in pg_pids}
    t0 = time.monotonic()
    if profile_dir is not None and server.name == "scrawn":
        out = profile_dir / f"py-spy-{db}-{kind}.txt"
        spy = subprocess.Popen(
            [
                opts.profile,
                "record",
                "--pid",
                str(server.process.pid),
                "--duration",
                str(int(opts.seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    rss: list[float] = []
    while (left := end_at - time.monotonic()) > 0:
        rss.append(proc_rss_mb(server.process.pid))
        time.sleep(min(1.0, left))
    busy1, total1 = machine_cpu()
    server1 = proc_cpu_seconds(server.process.pid)
    pg1 = {pid: proc_cpu_seconds(pid) for pid in pg_pids}
    pg_pids = [pid for pid in pg_pids if pg1[pid] > 0]  # a backend that went away is not counted
    window = time.monotonic() - t0
    results = [f.result() for f in futures]
    if spy is not None:
        spy.wait(timeout=60)
        summarise_profile(profile_dir / f"py-spy-{db}-{kind}.txt")  # type: ignore[operator]

    latencies = sorted(x for r in results for x in r["latencies"])
    events = sum(r["events_in_window"] for r in results)
    calls = sum(r["calls_in_window"] for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    ncpu = os.cpu_count() or 1
    machine_busy = (busy1 - busy0) / max(1, total1 - total0) * ncpu
    server_cpu = (server1 - server0) / window
    db_cpu = sum(pg1[p] - pg0[p] for p in pg_pids) / window if pg_pids else None
    client_cpu = sum(r["cpu_seconds"] for r in results) / opts.seconds
    m = Measurement(
        db=db,
        kind=kind,
        server=server.name,
        seconds=opts.seconds,
        events=events,
        calls=calls,
        events_per_s=events / opts.seconds,
        calls_per_s=calls / opts.seconds,
        p50_ms=_pct(latencies, 0.50),
        p90_ms=_pct(latencies, 0.90),
        p99_ms=_pct(latencies, 0.99),
        max_ms=latencies[-1] * 1000 if latencies else None,
        errors=dict(errors),
        error_samples=[s for r in results for s in r["error_samples"]][:5],
        server_cpu=server_cpu,
        db_cpu=db_cpu,
        client_cpu=client_cpu,
        machine_busy=machine_busy,
        other_cpu=max(0.0, machine_busy - server_cpu - client_cpu - (db_cpu or 0.0)),
        acked=sum(r["acked_total"] for r in results),
        rss_mb=rss,
    )
    if events:
        m.server_us_per_event = server_cpu * opts.seconds / events * 1e6
        m.db_us_per_event = db_cpu * opts.seconds / events * 1e6 if db_cpu is not None else None
    if server.name == "scrawn":
        m.stored = count_stored(server, prefix)
    return m


def summarise_profile(raw: Path, top: int = 45) -> None:
    """Turn py-spy's raw (collapsed) stacks into the functions with the most samples, written beside it as
    ``*.top.txt``: inclusive share (anywhere on the stack) on the event-loop thread, then own share (top of
    the stack) on every thread. Samples are of threads py-spy saw running: waiting in epoll can appear."""
    if not raw.exists():
        return
    own: Counter[str] = Counter()
    loop_inclusive: Counter[str] = Counter()
    total = loop_total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += n
        if any(f.startswith("BaseEventLoop.run_forever") for f in frames):
            loop_total += n
            for f in set(frames):
                loop_inclusive[f] += n
    lines = [
        f"{raw.name}: {total} samples at 200 Hz, {loop_total} of them on the event-loop thread",
        "",
        "event-loop thread, inclusive (frames on every sample left out):",
    ]
    lines += [
        f"  {k / loop_total:6.1%}  {f}"
        for f, k in loop_inclusive.most_common(top * 3)
        if k < 0.99 * loop_total
    ][:top]
    lines += ["", "all threads, own time:"]
    lines += [f"  {k / total:6.1%}  {f}" for f, k in own.most_common(top)]
    raw.with_suffix(".top.txt").write_text("\n".join(lines) + "\n")


def describe(m: Measurement) -> str:
    lat = f"p50 {m.p50_ms:.1f} ms, p99 {m.p99_ms:.1f} ms" if m.p99_ms is not None else "no calls"
    db_cpu = f" db {m.db_cpu:.2f}" if m.db_cpu is not None else ""
    errs = f", errors {m.errors}" if m.errors else ""
    stored = f", stored {m.stored}/{m.acked} acked" if m.stored is not None else ""
    per_event = f" ({m.server_us_per_event:.0f} us/event)" if m.server_us_per_event is not None else ""
    return (
        f"  {m.db:8} {m.kind:17} {m.server:6} {m.events_per_s:7.0f} events/s ({m.calls_per_s:.0f} calls/s), "
        f"{lat}; cpu: server {m.server_cpu:.2f}{per_event} client {m.client_cpu:.2f}{db_cpu} "
        f"other {m.other_cpu:.2f}{errs}{stored}"
    )


# ----------------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------------


def machine_info(pg_admin_url: str | None) -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions: dict[str, str | None] = {}
    for dist in (
        "scrawn",
        "hypercorn",
        "pyvoy",
        "connectrpc",
        "sqlalchemy",
        "grpcio",
        "protobuf",
        "httpx",
        "h2",
        "aiosqlite",
        "asyncpg",
        "starlette",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "server_stack": STACK,
        "python_implementation": platform.python_implementation(),
        "packages": versions,
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": list(os.getloadavg()),
    }
    if pg_admin_url:
        try:
            info["postgresql"] = pg_admin(pg_admin_url, "SELECT version() AS v")[0]["v"]
        except Exception as e:  # reported, never fatal
            info["postgresql"] = f"unavailable: {type(e).__name__}"
    digest = hashlib.sha256()
    for path in sorted((SRC / "scrawn").rglob("*.py")):
        digest.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes())
    info["src_sha256"] = digest.hexdigest()[:16]  # the code measured, including uncommitted changes
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    return info


KIND_LABEL = {
    "unary-grpc": "RegisterEvent, gRPC (grpcio aio, h2c)",
    "unary-connect": "RegisterEvent, Connect (httpx, HTTP/1.1)",
    "unary-connect-raw": "RegisterEvent, Connect (raw asyncio HTTP/1.1 client)",
    "stream-grpc": "StreamEvents batches, gRPC (h2c)",
    "stream-connect": "StreamEvents batches, Connect (httpx, HTTP/1.1)",
    "track-grpc": "TrackEvents batches, gRPC (h2c)",
}
KINDS = list(KIND_LABEL)
GRPCJS_KINDS = ("unary-grpc", "stream-grpc")  # the methods noop_grpcjs.mjs serves


def summarise(measurements: list[Measurement]) -> list[dict[str, Any]]:
    """Pair each scrawn figure with the no-op ceiling of the same database pass and protocol."""
    rows = []
    for m in measurements:
        if m.server != "scrawn":
            continue
        ceiling = next(
            (c for c in measurements if c.server == "noop" and c.db == m.db and c.kind == m.kind), None
        )
        ratio = m.events_per_s / ceiling.events_per_s if ceiling and ceiling.events_per_s else None
        grpcjs = next(
            (c for c in measurements if c.server == "grpc-js" and c.db == m.db and c.kind == m.kind), None
        )
        if m.kind.startswith("unary"):
            fast = m.p99_ms is not None and m.p99_ms <= TARGET_P99_MS
            ok = ratio is not None and ratio >= TARGET_RATIO and fast
            target = f"≥ {TARGET_RATIO} of no-op, p99 ≤ {TARGET_P99_MS:.0f} ms"
        else:
            ok = m.events_per_s >= TARGET_BATCH_EVENTS_PER_S
            target = f"≥ {TARGET_BATCH_EVENTS_PER_S:,} events/s"
        rows.append(
            {
                "db": m.db,
                "kind": m.kind,
                "events_per_s": m.events_per_s,
                "p50_ms": m.p50_ms,
                "p99_ms": m.p99_ms,
                "noop_events_per_s": ceiling.events_per_s if ceiling else None,
                "noop_p99_ms": ceiling.p99_ms if ceiling else None,
                "ratio": ratio,
                "server_us_per_event": m.server_us_per_event,
                "db_us_per_event": m.db_us_per_event,
                "noop_us_per_event": ceiling.server_us_per_event if ceiling else None,
                "grpcjs_events_per_s": grpcjs.events_per_s if grpcjs else None,
                "grpcjs_us_per_event": grpcjs.server_us_per_event if grpcjs else None,
                "rss_max_mb": max(m.rss_mb, default=None),
                "target": target,
                "meets_target": ok,
                "errors": sum(m.errors.values()),
                "durable": m.stored is not None and m.stored >= m.acked,
            }
        )
    return rows


def _f(x: float | None, spec: str = ".0f") -> str:
    return "–" if x is None else format(x, spec)


def _grpcjs(row: dict[str, Any]) -> str:
    if row.get("grpcjs_events_per_s") is None:
        return "–"
    return f"{_f(row['grpcjs_events_per_s'])} ({_f(row['grpcjs_us_per_event'])})"


def _times(ours: float | None, reference: float | None) -> str:
    return "–" if ours is None or not reference else f"{ours / reference:.1f}×"


def _rss(samples: list[float]) -> str:
    return f"{samples[0]:.0f} → {max(samples):.0f} → {samples[-1]:.0f}" if samples else "–"


def _source(info: dict[str, Any]) -> str:
    measured = str(info.get("measured_source", ""))
    digest = f"sha256 of its src/scrawn/**.py `{info.get('src_sha256')}`"
    if measured.startswith("git "):
        return f"commit `{measured[4:]}` (exported with git archive), {digest}"
    head = info.get("git_commit")
    return f"the working tree at `{measured}` (HEAD `{head}` plus any uncommitted changes), {digest}"


def markdown(report: dict[str, Any]) -> str:
    info, opts = report["machine"], report["options"]
    pg = f", {info['postgresql'].split(' on ')[0]}" if info.get("postgresql") else ""
    out = [f"# Ingest benchmark — {report['date']}", "", f"Command: `{report['command']}`", ""]
    out += [
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, "
        f"Python {info['python']}, SQLite {info['sqlite']}{pg}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v) + ".",
        f"Code measured: {_source(info)}. "
        + (
            f"**Server started through the wrapper `{info['server_entry']}`, not `scrawn serve`.** "
            if info.get("server_entry", "-m scrawn.server.cli") != "-m scrawn.server.cli"
            else ""
        )
        + "Load average at start: "
        + ", ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
        + "; at end: "
        + ", ".join(f"{x:.2f}" for x in report.get("loadavg_at_end", []))
        + ".",
        "",
        f"Settings: served by {info.get('server_stack', 'hypercorn')} (scrawn and the no-op alike); "
        f"{opts['seconds']:g} s measured per figure after {opts['warmup']:g} s of warm-up; "
        f"{opts['concurrency']} concurrent RegisterEvent callers, over {opts['channels']} gRPC channels "
        f"(HTTP/2 connections) or {opts['concurrency']} HTTP/1.1 keep-alive connections (Connect, "
        f"{opts['connect_codec']} "
        f"codec); StreamEvents: {opts['streams']} concurrent calls of {opts['batch']} events; "
        f"{opts['client_procs']} load-generator process(es). Events: BASIC_USAGE with an amount debit, "
        f"spread over {USERS} users, every idempotency key unique. Client, server and database share the "
        "machine; each "
        "no-op ceiling is measured right before the scrawn figure it is compared with.",
        "",
        "## Against the targets (DESIGN §10)",
        "",
        "`us/event` is server CPU (all threads) per event acknowledged, from /proc: less sensitive than "
        "events/s to other work on the machine. For PostgreSQL the backends' CPU is shown separately.",
        "",
        "| database | measurement | scrawn events/s | p50 ms | p99 ms | no-op events/s | ratio | "
        "server us/event (no-op) | db us/event | grpc-js no-op events/s (us/event) | no-op CPU × grpc-js "
        "| server RSS max MB | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report["summary"]:
        out.append(
            f"| {r['db']} | {KIND_LABEL[r['kind']]} | {_f(r['events_per_s'])} | {_f(r['p50_ms'], '.1f')} | "
            f"{_f(r['p99_ms'], '.1f')} | {_f(r['noop_events_per_s'])} | {_f(r['ratio'], '.2f')} | "
            f"{_f(r['server_us_per_event'])} ({_f(r['noop_us_per_event'])}) | {_f(r['db_us_per_event'])} | "
            f"{_grpcjs(r)} | {_times(r.get('noop_us_per_event'), r.get('grpcjs_us_per_event'))} | "
            f"{_f(r.get('rss_max_mb'))} | {r['target']} | {'yes' if r['meets_target'] else '**no**'} |"
        )
    out += [
        "",
        "## Every measurement",
        "",
        "CPU columns are cores busy during the measured window: the server process (all threads), this run's "
        "PostgreSQL backends, the load generator, and the rest of the machine (other people's tests: noise). "
        "`stored/acked`: events in the database carrying this measurement's key prefix / events the server "
        "acknowledged (equal means every acknowledged event was committed).",
        "",
        "| database | measurement | server | events/s | calls/s | p50 ms | p90 ms | p99 ms | max ms "
        "| errors | "
        "cpu server | cpu db | cpu client | cpu other | stored/acked | RSS MB first → max → last |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for m in report["measurements"]:
        errs = ", ".join(f"{k} {v}" for k, v in m["errors"].items()) or "0"
        stored = f"{m['stored']}/{m['acked']}" if m["stored"] is not None else "–"
        out.append(
            f"| {m['db']} | {m['kind']} | {m['server']} | {_f(m['events_per_s'])} | {_f(m['calls_per_s'])} | "
            f"{_f(m['p50_ms'], '.1f')} | {_f(m['p90_ms'], '.1f')} | {_f(m['p99_ms'], '.1f')} | "
            f"{_f(m['max_ms'], '.1f')} | {errs} | {m['server_cpu']:.2f} | {_f(m['db_cpu'], '.2f')} | "
            f"{m['client_cpu']:.2f} | {m['other_cpu']:.2f} | {stored} | {_rss(m.get('rss_mb', []))} |"
        )
    samples = [
        (m["db"], m["kind"], m["server"], s) for m in report["measurements"] for s in m["error_samples"]
    ]
    if samples:
        out += ["", "Error samples:", ""] + [f"- {d} {k} {s}: `{e}`" for d, k, s, e in samples[:12]]
    if report.get("notes"):
        out += ["", report["notes"].rstrip()]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Scrawn ingest benchmark (DESIGN §10).")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--server", choices=["hypercorn", "pyvoy"], default="hypercorn", help="SCRAWN_SERVER, no-op alike"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each window")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent RegisterEvent callers")
    parser.add_argument("--channels", type=int, default=4, help="gRPC channels (HTTP/2 connections)")
    parser.add_argument("--client-procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--connect-codec", choices=["proto", "json"], default="proto")
    parser.add_argument(
        "--callers-per-client",
        type=int,
        default=1,
        help="Connect (httpx) callers sharing one AsyncClient and its keep-alive pool",
    )
    parser.add_argument("--batch", type=int, default=500, help="events per StreamEvents or TrackEvents call")
    parser.add_argument("--streams", type=int, default=4, help="concurrent StreamEvents or TrackEvents calls")
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated measurements to run")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SCRAWN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; the benchmark creates and drops its own database beside it",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the scrawn server with py-spy during each scrawn window (raw stacks)",
    )
    parser.add_argument(
        "--py-spy",
        default=os.environ.get("PY_SPY") or shutil.which("py-spy") or "",
        help="the py-spy executable for --profile [env PY_SPY; PATH]",
    )
    parser.add_argument("--out", default=None, help="results file stem (default ingest-<date>[-<db>])")
    parser.add_argument(
        "--server-wrapper",
        type=Path,
        default=None,
        help="run `python WRAPPER serve` instead of `python -m scrawn.server.cli serve` (for A/B experiments "
        "with a patched server; the wrapper must end by calling scrawn.server.cli.main())",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--git-ref",
        default=None,
        help="measure this commit's src/ (exported with git archive) instead of the working tree",
    )
    source.add_argument(
        "--src", type=Path, default=None, help="measure the scrawn package under this directory"
    )
    parser.add_argument(
        "--soak",
        action="store_true",
        help="measure scrawn alone (no no-op or grpc-js windows): a long --seconds window for RSS over time",
    )
    parser.add_argument(
        "--notes-file", type=Path, default=None, help="markdown appended to the summary (findings, context)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="only re-render the .md of an existing results .json (with --notes-file)",
    )
    args = parser.parse_args()
    global STACK
    STACK = args.server
    notes = args.notes_file.read_text() if args.notes_file else ""
    if args.render is not None:
        report = json.loads(args.render.read_text())
        if notes:
            report["notes"] = notes
            args.render.write_text(json.dumps(report, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(markdown(report))
        print(f"wrote {args.render.with_suffix('.md')}")
        return

    opts = Options(
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        channels=args.channels,
        client_procs=args.client_procs,
        connect_codec=args.connect_codec,
        callers_per_client=args.callers_per_client,
        batch=args.batch,
        streams=args.streams,
        profile=args.py_spy if args.profile else "",
    )
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    date = dt.date.today().isoformat()
    stem = args.out or (f"ingest-{date}" if args.db == "both" else f"ingest-{date}-{args.db}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profile_dir = RESULTS_DIR / f"{stem}-profiles" if args.profile else None
    if profile_dir is not None:
        if not args.py_spy:
            parser.error("--profile needs py-spy (pip install py-spy; on PATH, or --py-spy/PY_SPY)")
        profile_dir.mkdir(exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="scrawn-bench-"))
    measured_ref = None
    if args.git_ref is not None:
        src, measured_ref = export_git_ref(args.git_ref, work / "snapshot")
        use_src(src)
    elif args.src is not None:
        use_src(args.src)
    if args.server_wrapper is not None:
        SERVER_ENTRY[:] = [str(args.server_wrapper.resolve())]
    info = machine_info(args.pg_url if "postgres" in dbs else None)
    info["server_entry"] = " ".join(SERVER_ENTRY)
    info["measured_source"] = f"git {measured_ref}" if measured_ref else str(SRC)
    print(
        f"{command}\nmachine: {info['nproc']} cpus, {info['memory_gib']} GiB, "
        f"loadavg {info['loadavg_at_start']}"
    )

    measurements: list[Measurement] = []
    failures: dict[str, str] = {}
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=opts.client_procs, mp_context=ctx)
    noop: Server | None = None
    grpcjs: Server | None = None
    try:
        for f in [pool.submit(_worker_warm) for _ in range(opts.client_procs)]:
            f.result()
        if not args.soak:
            noop = start_noop(work)
            grpcjs = start_grpcjs(work)
        for db in dbs:
            pg_name = None
            if db == "sqlite":
                data_dir = work / "sqlite"
                data_dir.mkdir()
                url = f"sqlite:///{data_dir / 'scrawn.db'}"
            else:
                pg_name = f"scrawn_bench_{run_id}"
                pg_admin(args.pg_url, f'CREATE DATABASE "{pg_name}"')
                url = pg_url_for(args.pg_url, pg_name)
                data_dir = work / "postgres"
                data_dir.mkdir()
            server = None
            try:
                server = start_scrawn(url, data_dir)
                for kind in kinds:
                    reference = [grpcjs] if grpcjs is not None and kind in GRPCJS_KINDS else []
                    for target in [server] if noop is None else [*reference, noop, server]:
                        m = measure(pool, opts, db, kind, target, run_id, profile_dir)
                        measurements.append(m)
                        print(describe(m), flush=True)
            except Exception as e:  # recorded in the results; the other database still runs
                failures[db] = "".join(traceback.format_exception_only(e)).strip()[-2000:]
                print(f"  {db} pass failed: {failures[db]}", flush=True)
            finally:
                if server is not None:
                    server.stop()
                    log = _tail(server.log, 20)
                    if log.strip():
                        print(f"  server log tail ({db}):\n{log}")
                if pg_name is not None:
                    pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    finally:
        for started in (noop, grpcjs):
            if started is not None:
                started.stop()
        pool.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "benchmark": "ingest",
        "date": date,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": info,
        "options": opts.__dict__,
        "targets": {
            "unary_ratio": TARGET_RATIO,
            "unary_p99_ms": TARGET_P99_MS,
            "batch_events_per_s": TARGET_BATCH_EVENTS_PER_S,
        },
        "summary": summarise(measurements),
        "measurements": [m.__dict__ for m in measurements],
        "failures": failures,
        "loadavg_at_end": list(os.getloadavg()),
        "notes": notes,
    }
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(markdown(report))
    print(f"\nwrote {RESULTS_DIR / stem}.json and .md")
    for r in report["summary"]:
        print(
            f"  {r['db']:8} {r['kind']:13} {r['events_per_s']:8.0f}/s  ratio {_f(r['ratio'], '.2f')}  "
            f"p99 {_f(r['p99_ms'], '.1f')} ms  {'meets' if r['meets_target'] else 'BELOW'} "
            f"target ({r['target']})"
        )


if __name__ == "__main__":
    main()
