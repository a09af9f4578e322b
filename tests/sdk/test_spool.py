"""The durable spool: a process killed with SIGKILL loses nothing that ``track()`` accepted; the next
process with the same spool file delivers it exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from scrawn import Scrawn
from scrawn.errors import ValidationError
from tests.sdk.conftest import balances_of, stored_events

CHILD = textwrap.dedent(
    """
    import sys, time
    from scrawn import Scrawn

    key, url, spool, prefix, count = sys.argv[1:6]
    client = Scrawn(key, url, spool_path=spool, batch_size=int(sys.argv[6]), flush_interval=0.01,
                    backoff_base=0.01, backoff_max=0.05)
    for i in range(int(count)):
        assert client.track(user_id=prefix + str(i % 7), debit=1 + i % 3, idempotency_key=prefix + str(i))
        print(i, flush=True)  # printed only after track() returned: the event is in the spool
    print("done", flush=True)
    time.sleep(600)
    """
)


def _run_child(args: list[str], kill_after: int) -> int:
    """Start the child, SIGKILL it once it reported ``kill_after`` tracked events; the last index it
    reported is returned (events after it may have been accepted too, and must be delivered as well)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        if line.strip() == "done":
            break
        last = int(line)
        if last + 1 >= kill_after:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return last


def _deliver_rest(server: Any, spool: Path) -> None:
    with Scrawn(server.live_key, server.base_url, spool_path=spool) as client:
        assert client.pending_count >= 0
        assert client.flush(timeout=120)
        assert client.pending_count == 0


def _check_exactly_once(server: Any, prefix: str, reported_last: int) -> None:
    rows = stored_events(server, user_prefix=prefix)
    keys = sorted(int(r.idempotency_key[len(prefix) :]) for r in rows)
    assert len(keys) == len(set(keys))  # exactly once (the database also enforces it)
    assert keys == list(range(len(keys)))  # nothing lost: no gaps
    assert len(keys) >= reported_last + 1  # everything track() accepted before the kill
    expected: dict[str, Decimal] = {}
    for i in keys:
        user = prefix + str(i % 7)
        expected[user] = expected.get(user, Decimal(0)) - (1 + i % 3)
    assert balances_of(server, user_prefix=prefix) == expected


def test_killed_before_any_delivery(module_server: Any, tmp_path: Path, closed_url: str) -> None:
    """The first process cannot reach the server at all; every event waits in the spool."""
    prefix = f"spool-{uuid.uuid4().hex[:8]}-"
    spool = tmp_path / "track.db"
    last = _run_child([module_server.live_key, closed_url, str(spool), prefix, "300", "50"], kill_after=300)
    assert last == 299
    _deliver_rest(module_server, spool)
    _check_exactly_once(module_server, prefix, last)
    assert len(stored_events(module_server, user_prefix=prefix)) == 300


def test_killed_while_delivering(module_server: Any, tmp_path: Path) -> None:
    """The first process delivers batches as it tracks and is killed mid-way: some events are stored,
    some may be stored but not yet deleted from the spool (sent again: duplicates), some not sent."""
    prefix = f"spool-{uuid.uuid4().hex[:8]}-"
    spool = tmp_path / "track.db"
    last = _run_child(
        [module_server.live_key, module_server.base_url, str(spool), prefix, "20000", "20"], kill_after=3000
    )
    delivered_by_first = len(stored_events(module_server, user_prefix=prefix))
    print("first process: reported", last + 1, "stored", delivered_by_first)
    _deliver_rest(module_server, spool)
    _check_exactly_once(module_server, prefix, last)
    assert delivered_by_first < len(stored_events(module_server, user_prefix=prefix))


def test_a_spool_is_used_by_one_process_at_a_time(module_server: Any, tmp_path: Path) -> None:
    spool = tmp_path / "track.db"
    first = Scrawn(module_server.live_key, module_server.base_url, spool_path=spool)
    try:
        with pytest.raises(ValidationError) as busy:
            Scrawn(module_server.live_key, module_server.base_url, spool_path=spool)
        assert busy.value.field == "spool_path"
    finally:
        first.close()
    Scrawn(module_server.live_key, module_server.base_url, spool_path=spool).close()  # free again


def test_spool_survives_close_with_server_down(module_server: Any, tmp_path: Path, closed_url: str) -> None:
    prefix = f"spool-{uuid.uuid4().hex[:8]}-"
    spool = tmp_path / "track.db"
    down = Scrawn(module_server.live_key, closed_url, spool_path=spool, backoff_base=0.01)
    for i in range(5):
        down.track(user_id=prefix + "u", debit=2, idempotency_key=prefix + str(i))
    assert down.close(timeout=0.3) is False and down.pending_count == 5
    _deliver_rest(module_server, spool)
    assert sorted(r.idempotency_key for r in stored_events(module_server, user_prefix=prefix)) == [
        prefix + str(i) for i in range(5)
    ]
