"""Typed, non-blocking ``track(user_id=, event_type=, quantity=)`` (settle's ``events.track``) against a real
``scrawn serve``: delivered in batches through ``usage.v1.UsageService/TrackEvents``, exactly once, priced by
the project's event price, through outages, the spool, and ``client.events``; ``dropped_count`` and
``flush()`` after a permanent failure; ``track()`` on a closed client."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scrawn import AsyncScrawn, ErrorContext, Scrawn
from scrawn.errors import AlreadyExistsError, ScrawnError, ValidationError
from tests.conftest import ServerHandle
from tests.sdk.conftest import FlakyServer, put_event_price, stored_events


@dataclass
class TypedRow:
    user_id: str
    idempotency_key: str
    event_type: str
    name: str | None
    quantity: str | None
    product_ref: str | None
    debit: Decimal
    metadata: str | None
    reported_at: int


def typed_rows(server: ServerHandle, *, user_prefix: str) -> list[TypedRow]:
    """Every event whose user id starts with ``user_prefix``, with its typed columns (from the database)."""
    from scrawn.server.db.schema import events

    async def read() -> list[TypedRow]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(
                        events.c.user_id,
                        events.c.idempotency_key,
                        events.c.event_type,
                        events.c.name,
                        events.c.quantity,
                        events.c.product_ref,
                        events.c.debit,
                        events.c.metadata,
                        events.c.reported_at,
                    ).where(events.c.user_id.startswith(user_prefix, autoescape=True))
                )
                return [TypedRow(*row) for row in rows]
        finally:
            await db.dispose()

    return asyncio.run(read())


def _prefix() -> str:
    return f"typ-{uuid.uuid4().hex[:8]}-"


def _type() -> str:
    return f"AI_QUERY_{uuid.uuid4().hex[:6].upper()}"


def test_ten_thousand_typed_calls_from_eight_threads_arrive_exactly_once(module_server: Any) -> None:
    priced, free = _type(), _type()
    put_event_price(module_server, priced, "mul(quantity(), 2)")
    p = _prefix()
    per_thread, threads = 1250, 8
    accepted = [0] * threads
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        barrier = threading.Barrier(threads)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                accepted[t] += client.track(
                    user_id=f"{p}{t}",
                    event_type=priced if i % 2 else free,
                    quantity=Decimal(1 + i % 3) / 2,  # 0.5, 1, 1.5
                    metadata={"i": i},
                )

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        assert client.flush(timeout=180) is True
        assert client.pending_count == 0 and client.dropped_count == 0
    assert sum(accepted) == threads * per_thread
    rows = typed_rows(module_server, user_prefix=p)
    assert len(rows) == 10_000 and len({r.idempotency_key for r in rows}) == 10_000
    assert {r.event_type for r in rows} == {"TYPED"}
    assert {r.quantity for r in rows} == {"0.5", "1", "1.5"}
    for r in rows:
        assert r.debit == (2 * Decimal(r.quantity or "0") if r.name == priced else 0)
    # Every (thread, i) arrived once, with its own quantity and type.
    seen = {(r.user_id, int(r.metadata[5:-1]) if r.metadata else -1) for r in rows}
    assert seen == {(f"{p}{t}", i) for t in range(threads) for i in range(per_thread)}
    by_i = {(r.user_id, r.metadata): r for r in rows}
    sample = by_i[(f"{p}3", '{"i":5}')]
    assert sample.name == priced and sample.quantity == "1.5" and sample.debit == Decimal(3)


def test_typed_and_debit_events_share_one_buffer(module_server: Any) -> None:
    kind = _type()
    put_event_price(module_server, kind, "mul(quantity(), 0.25)")
    p = _prefix()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)  # inside the late-event window
    earlier = int(time.time()) - 3600
    with Scrawn(module_server.live_key, module_server.base_url, batch_size=7) as client:
        for i in range(30):
            assert client.track(user_id=p + "mixed", debit=1)
            assert client.track(user_id=p + "mixed", event_type=kind, quantity=str(i))
        assert client.track(
            user_id=p + "full",
            event_type=kind,
            quantity=0.1,
            product_ref="pdf",
            metadata={"file": "a.pdf"},
            idempotency_key=p + "k1",
            timestamp=at,
        )
        assert client.events.track(user_id=p + "events", event_type=kind, quantity=4, timestamp=earlier)
        assert client.events.pending_count == client.pending_count
        assert client.events.flush(60) is True
        assert client.events.dropped_count == 0 and client.pending_count == 0
    rows = typed_rows(module_server, user_prefix=p)
    mixed = [r for r in rows if r.user_id == p + "mixed"]
    assert sorted(r.event_type for r in mixed) == ["BASIC_USAGE"] * 30 + ["TYPED"] * 30
    assert sum(r.debit for r in mixed) == 30 + Decimal("0.25") * sum(range(30))
    [full] = [r for r in rows if r.user_id == p + "full"]
    assert (full.idempotency_key, full.name, full.quantity, full.product_ref) == (
        p + "k1",
        kind,
        "0.1",
        "pdf",
    )
    assert full.metadata == '{"file":"a.pdf"}' and full.reported_at == int(at.timestamp())
    assert full.debit == Decimal("0.025")
    [ev] = [r for r in rows if r.user_id == p + "events"]
    assert ev.quantity == "4" and ev.debit == 1 and ev.reported_at == earlier


async def test_typed_track_from_async_code(module_server: Any) -> None:
    p = _prefix()
    async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
        for i in range(200):
            assert client.events.track(user_id=p + "a", event_type="ASYNC_Q", quantity=i % 4)
        assert await client.events.flush(60) is True
        assert client.events.pending_count == 0 and client.events.dropped_count == 0
    rows = await asyncio.to_thread(typed_rows, module_server, user_prefix=p)
    assert len(rows) == 200 and sum(Decimal(r.quantity or "x") for r in rows) == 300


def test_a_retried_typed_batch_is_stored_once(module_server: Any, flaky: FlakyServer) -> None:
    """The first TrackEvents call is applied but its answer is lost: the worker sends the batch again with
    the same keys, and the server answers duplicates."""
    flaky.script = ["forward_drop"]
    p = _prefix()
    with Scrawn(module_server.live_key, flaky.url, backoff_base=0.01) as client:
        for i in range(50):
            client.track(user_id=p + "u", event_type="RETRIED", quantity=i)
        assert client.flush(60) is True and client.dropped_count == 0
    track_calls = [a for a in flaky.attempts if a.path.endswith("/TrackEvents")]
    assert len(track_calls) >= 2 and track_calls[0].body == track_calls[1].body
    rows = typed_rows(module_server, user_prefix=p)
    assert len(rows) == 50 and sorted(int(r.quantity or "-1") for r in rows) == list(range(50))


def test_a_large_batch_is_split_into_track_events_calls_of_at_most_1000(
    module_server: Any, flaky: FlakyServer
) -> None:
    from scrawn._proto.usage.v1 import usage_pb2 as usage_pb

    p = _prefix()
    with Scrawn(module_server.live_key, flaky.url, batch_size=2500, flush_interval=60) as client:
        for i in range(2400):
            client.track(user_id=p + "big", event_type="BIG", quantity=i)
        for _ in range(100):
            client.track(user_id=p + "big", debit=1)
        assert client.flush(120) is True and client.dropped_count == 0
    sizes = [
        len(usage_pb.TrackEventsRequest.FromString(a.body).events)
        for a in flaky.attempts
        if a.path.endswith("/TrackEvents")
    ]
    assert sum(sizes) == 2400 and max(sizes) <= 1000
    rows = typed_rows(module_server, user_prefix=p)
    assert len(rows) == 2500 and sum(r.debit for r in rows) == 100


def test_a_server_outage_in_the_middle_loses_nothing(server: ServerHandle) -> None:
    """Stop the server while tracking, keep tracking, restart it on the same port and database: every
    typed event is stored exactly once."""
    kind = _type()
    put_event_price(server, kind, "quantity()")
    p = _prefix()
    total = 0
    with Scrawn(
        server.live_key, server.base_url, backoff_base=0.01, batch_size=100, flush_interval=0.05
    ) as c:
        for i in range(1500):
            c.track(user_id=p + str(i % 5), event_type=kind, quantity=1 + i % 2, idempotency_key=f"{p}{i}")
        total += 1500
        server.stop()  # mid-delivery: some batches stored, some in flight, the rest waiting
        for i in range(1500, 3000):
            assert c.track(
                user_id=p + str(i % 5), event_type=kind, quantity=1 + i % 2, idempotency_key=f"{p}{i}"
            )
        total += 1500
        assert c.flush(timeout=0.5) is False  # nothing can be delivered while the server is down
        assert c.pending_count > 0
        server.start()
        assert c.flush(timeout=180) is True
        assert c.pending_count == 0 and c.dropped_count == 0
    rows = typed_rows(server, user_prefix=p)
    assert len(rows) == total == len({r.idempotency_key for r in rows})
    assert {r.idempotency_key for r in rows} == {f"{p}{i}" for i in range(total)}
    assert sum(r.debit for r in rows) == sum(1 + i % 2 for i in range(total))


def test_a_permanent_failure_is_dropped_and_flush_says_so(module_server: Any) -> None:
    """The same idempotency key with different content is refused for good (ALREADY_EXISTS): dropped,
    reported to on_error, and the next flush() returns False."""
    p = _prefix()
    reports: list[ScrawnError] = []

    def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        reports.append(error)

    with Scrawn(module_server.live_key, module_server.base_url, on_error=on_error) as client:
        client.track(user_id=p + "u", event_type="CONFLICT", quantity=1, idempotency_key=p + "k")
        assert client.flush(30) is True
        client.track(user_id=p + "u", event_type="CONFLICT", quantity=2, idempotency_key=p + "k")
        client.track(user_id=p + "u", event_type="CONFLICT", quantity=3)  # delivered
        assert client.flush(30) is False
        assert client.dropped_count == 1 and client.pending_count == 0
        assert client.flush(30) is True  # nothing dropped since
        client.track(user_id=p + "u", debit=1, idempotency_key=p + "d")
        assert client.flush(30) is True
        client.track(user_id=p + "u", debit=2, idempotency_key=p + "d")  # a debit conflict is dropped too
        assert client.flush(30) is False and client.dropped_count == 2
    assert [type(e) for e in reports] == [AlreadyExistsError, AlreadyExistsError]
    assert reports[0].field == "idempotencyKey"
    rows = typed_rows(module_server, user_prefix=p)
    assert sorted(r.quantity or r.debit for r in rows if r.event_type == "TYPED") == ["1", "3"]


def test_typed_events_round_trip_through_the_spool(
    module_server: Any, tmp_path: Path, closed_url: str
) -> None:
    p = _prefix()
    spool = tmp_path / "spool.db"
    down = Scrawn(module_server.live_key, closed_url, spool_path=spool)
    down.track(user_id=p + "s", event_type="SPOOLED", quantity="2.5", product_ref="x", metadata={"a": 1})
    down.track(user_id=p + "s", debit=3)
    assert down.close(timeout=0.2) is False and down.dropped_count == 0  # kept in the spool, not dropped
    # A record written by an older SDK (version 1, debit only) is read too.
    db = sqlite3.connect(spool)
    old = f'[1,"{p}s","amount",4,null,"{p}old",{int(time.time()) - 60},"RAW"]'
    db.execute("INSERT INTO scrawn_spool (event) VALUES (?)", (old,))
    db.commit()
    db.close()
    with Scrawn(module_server.live_key, module_server.base_url, spool_path=spool) as up:
        assert up.pending_count == 3
        assert up.flush(60) is True and up.pending_count == 0
    rows = typed_rows(module_server, user_prefix=p)
    typed = [r for r in rows if r.event_type == "TYPED"]
    assert [(r.name, r.quantity, r.product_ref, r.metadata) for r in typed] == [
        ("SPOOLED", "2.5", "x", '{"a":1}')
    ]
    assert sorted(r.debit for r in rows if r.event_type == "BASIC_USAGE") == [3, 4]
    assert {r.idempotency_key for r in stored_events(module_server, user_prefix=p)} >= {p + "old"}


def test_unreadable_spool_records_are_counted_as_dropped(
    module_server: Any, tmp_path: Path, closed_url: str
) -> None:
    p = _prefix()
    spool = tmp_path / "spool.db"
    down = Scrawn(module_server.live_key, closed_url, spool_path=spool)
    down.track(user_id=p + "s", event_type="SPOOLED", quantity=1)
    down.close(timeout=0.1)
    db = sqlite3.connect(spool)
    for bad in ("not json", "[3,1,2]", '[2,"u","T"]', "{}"):
        db.execute("INSERT INTO scrawn_spool (event) VALUES (?)", (bad,))
    db.commit()
    db.close()
    with Scrawn(module_server.live_key, module_server.base_url, spool_path=spool) as up:
        assert up.flush(60) is False  # four records can never be delivered
        assert up.dropped_count == 4 and up.pending_count == 0
    assert [r.name for r in typed_rows(module_server, user_prefix=p)] == ["SPOOLED"]


# ----------------------------------------------------------------------------------- closed clients


def test_track_on_a_closed_client_always_raises(closed_url: str) -> None:
    from tests.sdk.conftest import LIVE_SHAPED_KEY

    never_used = Scrawn(LIVE_SHAPED_KEY, closed_url)
    never_used.close()  # nothing was ever tracked: there is no worker to stop
    with pytest.raises(RuntimeError):
        never_used.track(user_id="u", debit=1)
    with pytest.raises(RuntimeError):
        never_used.track(user_id="u", event_type="X")
    with pytest.raises(RuntimeError):
        never_used.events.track(user_id="u", event_type="X")
    assert never_used._tracker is None  # no worker was revived
    used = Scrawn(LIVE_SHAPED_KEY, closed_url)
    used.track(user_id="u", event_type="X")
    used.close(timeout=0.1)
    with pytest.raises(RuntimeError):
        used.track(user_id="u", event_type="X")
    with pytest.raises(RuntimeError):
        used.track_ai(user_id="u", model="gpt-4o-mini", input_tokens=1, output_tokens=1)


async def test_async_track_on_a_closed_client_always_raises(closed_url: str) -> None:
    from tests.sdk.conftest import LIVE_SHAPED_KEY

    client = AsyncScrawn(LIVE_SHAPED_KEY, closed_url)
    await client.close()
    with pytest.raises(RuntimeError):
        client.track(user_id="u", debit=1)
    with pytest.raises(RuntimeError):
        client.events.track(user_id="u", event_type="X", quantity=1)


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"event_type": None, "quantity": 1}, "quantity"),
        ({"event_type": ""}, "event_type"),
        ({"event_type": "has space"}, "event_type"),
        ({"event_type": 7}, "event_type"),
        ({"event_type": "X" * 129}, "event_type"),
        ({"event_type": "X", "quantity": float("nan")}, "quantity"),
        ({"event_type": "X", "quantity": float("inf")}, "quantity"),
        ({"event_type": "X", "quantity": Decimal("NaN")}, "quantity"),
        ({"event_type": "X", "quantity": Decimal("-Infinity")}, "quantity"),
        ({"event_type": "X", "quantity": -1}, "quantity"),
        ({"event_type": "X", "quantity": "-0.5"}, "quantity"),
        ({"event_type": "X", "quantity": True}, "quantity"),
        ({"event_type": "X", "quantity": "one"}, "quantity"),
        ({"event_type": "X", "quantity": [1]}, "quantity"),
        ({"event_type": "X", "quantity": 10**30}, "quantity"),
        ({"event_type": "X", "metadata": {"x": object()}}, "metadata"),
        ({"event_type": "X", "metadata": {"x": float("nan")}}, "metadata"),
        ({"event_type": "X", "metadata": ["not", "a", "dict"]}, "metadata"),
        ({"event_type": "X", "metadata": {"x": "y" * 17_000}}, "metadata"),
        ({"event_type": "X", "product_ref": ""}, "product_ref"),
        ({"event_type": "X", "idempotency_key": ""}, "idempotency_key"),
        ({"event_type": "X", "timestamp": datetime(2026, 1, 1)}, "timestamp"),  # naive: refused
        ({"event_type": "X", "timestamp": 4_000_000_000}, "timestamp"),
        ({"event_type": "X", "timestamp": True}, "timestamp"),
        ({"event_type": "X", "timestamp": "2026-01-01"}, "timestamp"),
        ({"event_type": "X", "debit": 1}, "debit"),
        ({}, "debit"),
        ({"debit": 1, "product_ref": "p"}, "product_ref"),
        ({"event_type": "X", "user_id": ""}, "user_id"),
    ],
)
def test_typed_track_validation_names_the_field(closed_url: str, kwargs: dict[str, Any], field: str) -> None:
    from tests.sdk.conftest import LIVE_SHAPED_KEY

    client = Scrawn(LIVE_SHAPED_KEY, closed_url)
    try:
        with pytest.raises(ValidationError) as info:
            client.track(**{"user_id": "u", **kwargs})
        assert info.value.field == field
        assert client.pending_count == 0 and client._tracker is None  # nothing queued
    finally:
        client.close(timeout=0)


# ------------------------------------------------------------------------------------------------ docs


def test_the_sdk_track_examples_run(module_server: ServerHandle) -> None:
    """docs/sdk-track.md's self-contained examples (``client.events``, the quarantine-aware hook, the
    opening one) run as written."""
    import os
    import re
    import subprocess
    import sys

    text = (Path(__file__).resolve().parents[2] / "docs" / "sdk-track.md").read_text()
    sections = {part.splitlines()[0]: part for part in re.split(r"(?m)^(?=## )", text) if part}
    blocks = [
        re.findall(r"```python\n(.*?)```", sections[heading], re.DOTALL)[0]
        for heading in ("## `client.events`", "## Kept for repricing")
    ]
    blocks.append(re.findall(r"```python\n(.*?)```", text, re.DOTALL)[0] + "handle_request('doc-user')\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")},
        "SCRAWN_API_KEY": module_server.live_key,
        "SCRAWN_BASE_URL": module_server.base_url,
    }
    for code in blocks:
        command = [sys.executable, "-c", code]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    rows = typed_rows(module_server, user_prefix="user_123")
    assert {(r.name, r.quantity) for r in rows if r.event_type == "TYPED"} >= {
        ("AI_QUERY", "1"),
        ("DOCUMENT_SUMMARIZE", "3"),
    }
