"""``scrawn serve --workers 2`` (docs/configuration.md#workers): both processes answer on the one port, 50
concurrent duplicates of one key sent across both store one event, a worker killed with SIGKILL under load
loses no acknowledged event (and is replaced), and SIGTERM drains both under 64 callers (exit 0). Real
servers on SQLite and PostgreSQL, real gRPC and Connect clients."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.server.db.schema import events
from tests.clients import REGISTER, ConnectClient, bearer
from tests.conftest import ServerHandle, make_server
from tests.scenarios.test_durability import (
    ACKED_BEFORE_SIGNAL,
    Load,
    OwnConnectionGrpcClient,
    assert_acknowledged_stored,
    assert_refused_unserved,
    assert_told_to_retry,
    fetch,
)

DUPLICATES = 50
WAIT = 120  # seconds to give up waiting for a log line or a replacement on a busy machine (never a measure)
BURSTS = 5  # tries at a burst both workers serve part of (the kernel hands connections to either)


@pytest.fixture
def workers_server(database_url: str, tmp_path: Path) -> Iterator[ServerHandle]:
    handle = make_server(database_url, tmp_path)
    # Access lines (info) as JSON: each names the process that served the call.
    handle.env |= {"SCRAWN_WORKERS": "2", "SCRAWN_LOG_LEVEL": "info", "SCRAWN_LOG_FORMAT": "json"}
    handle.start()  # ready once one worker answers /readyz
    try:
        deadline = time.monotonic() + WAIT
        while "(2 workers)" not in handle.log():  # the supervisor says "serving on" once both are ready
            assert time.monotonic() < deadline, handle.log()[-3000:]
            time.sleep(0.05)
        yield handle
    finally:
        handle.stop()


def workers_of(server: ServerHandle) -> set[int]:
    """The pids of the server's worker processes (its children)."""
    assert server.process is not None
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid:
            found.add(int(stat.parent.name))
    return found


def registrations(server: ServerHandle) -> list[int]:
    """The pid of the process that served each RegisterEvent so far, from the access lines."""
    lines = (json.loads(line) for line in server.log().splitlines() if line.startswith("{"))
    return [line["process"] for line in lines if line.get("rpc") == REGISTER]


def served_by(server: ServerHandle, before: int, calls: int) -> Counter[int]:
    """Calls per process among the ``calls`` RegisterEvent access lines after the first ``before``."""
    deadline = time.monotonic() + WAIT
    while len(found := registrations(server)) < before + calls:  # written just after each answer
        assert time.monotonic() < deadline, f"{len(found) - before} of {calls} access lines"
        time.sleep(0.05)
    return Counter(found[before:])


def burst(server: ServerHandle, key: str) -> list[Any]:
    """DUPLICATES callers, each on its own connection (half gRPC, half Connect), send one event at once."""
    request = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId="u-dup", idempotencyKey=key, basicUsage=ev.BasicUsage(amount=2)
    )
    start = threading.Barrier(DUPLICATES)
    answers: list[Any] = [None] * DUPLICATES

    def call(i: int) -> None:
        client: Any = OwnConnectionGrpcClient(server.grpc_target) if i % 2 else ConnectClient(server.base_url)
        with client:
            start.wait()
            answers[i] = client.unary(REGISTER, request, bearer(server.live_key))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(DUPLICATES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def stored_with(server: ServerHandle, key: str) -> int:
    stmt = select(func.count()).where(
        events.c.project_id == server.project_id, events.c.idempotency_key == key
    )
    return int(fetch(server, stmt)[0][0])


def test_both_workers_answer_and_concurrent_duplicates_store_one_event(workers_server: ServerHandle) -> None:
    server = workers_server
    workers = workers_of(server)
    assert len(workers) == 2
    assert "serving on" in server.log() and "(2 workers)" in server.log()
    spans_both = False
    for _ in range(BURSTS):
        key = f"dup-{uuid.uuid4().hex}"
        before = len(registrations(server))
        answers = burst(server, key)
        assert all(a is not None for a in answers)
        assert len({a.eventId for a in answers}) == 1, answers
        assert sorted(a.duplicate for a in answers) == [False] + [True] * (DUPLICATES - 1)
        assert stored_with(server, key) == 1
        by_process = served_by(server, before, DUPLICATES)
        assert set(by_process) <= workers
        if set(by_process) == workers:
            spans_both = True
            break
    assert spans_both, "no burst was served by both workers"


def test_a_killed_worker_loses_no_acknowledged_event_and_is_replaced(workers_server: ServerHandle) -> None:
    server = workers_server
    first = workers_of(server)
    load = Load(server, "killworker")
    load.start()
    load.wait_for_acks(ACKED_BEFORE_SIGNAL)
    busiest = Counter(registrations(server)).most_common(1)[0][0]
    os.kill(busiest, signal.SIGKILL)  # the other worker, and then its replacement, keep serving
    deadline = time.monotonic() + WAIT
    while not (workers_of(server) - first) or "starting another" not in server.log():
        assert server.process is not None and server.process.poll() is None
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.05)
    load.finish()
    assert_told_to_retry(load)
    assert set(load.attempted) - set(load.acked) == set(load.failed)
    assert_acknowledged_stored(server, load)  # on the surviving worker and the replacement
    assert len(workers_of(server)) == 2
    server.stop(signal.SIGTERM)
    assert "Traceback" not in server.log()


def test_sigterm_drains_both_workers_under_64_callers(workers_server: ServerHandle) -> None:
    server = workers_server
    process = server.process
    assert process is not None
    load = Load(server, "termworkers", callers=(32, 32), per_channel=8)
    load.start()
    load.wait_for_acks(ACKED_BEFORE_SIGNAL)
    assert len(set(registrations(server))) == 2  # both were serving
    server.stop(signal.SIGTERM)
    assert process.returncode == 0, server.log()[-3000:]  # a clean exit, not the fixture's fallback kill
    log = server.log()
    assert "Traceback" not in log and '"level": "error"' not in log, log[-3000:]
    load.finish()
    assert_told_to_retry(load)
    server.start()
    before = assert_acknowledged_stored(server, load)
    assert_refused_unserved(load, before)
