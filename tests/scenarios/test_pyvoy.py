"""``SCRAWN_SERVER=pyvoy`` (docs/configuration.md): the server on Envoy answers every protocol, drains and
exits 0 on SIGTERM, and its Envoy child never outlives it, even after SIGKILL. The wire tests also run
whole on it (``SCRAWN_TEST_SERVER=pyvoy``, scripts/test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from tests.clients import REGISTER, all_clients, bearer
from tests.conftest import ServerHandle, make_server

pytest.importorskip("pyvoy")


@pytest.fixture
def pyvoy_server(database_url: str, tmp_path: Path) -> Iterator[ServerHandle]:
    handle = make_server(database_url, tmp_path)
    handle.env["SCRAWN_SERVER"] = "pyvoy"
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def envoys_serving(port: int) -> list[int]:
    """The Envoy processes whose configuration listens on ``port``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"/envoy") and f'"port_value": {port}}}'.encode() in b" ".join(argv):
            found.append(int(proc.name))
    return found


def test_every_protocol_then_sigterm_drains_and_exits_0(pyvoy_server: ServerHandle) -> None:
    for client in all_clients(pyvoy_server):
        with client:
            request = ev.RegisterEventRequest(
                type=ev.BASIC_USAGE,
                userId="u",
                basicUsage=ev.BasicUsage(amount=3),
                idempotencyKey=uuid.uuid4().hex,
            )
            answer = client.unary(REGISTER, request, bearer(pyvoy_server.live_key))
            assert answer.message == "Event stored successfully", type(client)
    assert "(pyvoy)" in pyvoy_server.log()
    assert envoys_serving(pyvoy_server.port)
    process = pyvoy_server.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    pyvoy_server.process = None
    assert "Traceback" not in pyvoy_server.log()
    assert envoys_serving(pyvoy_server.port) == []


def test_envoy_dies_with_a_killed_server(pyvoy_server: ServerHandle) -> None:
    process = pyvoy_server.process
    assert process is not None and envoys_serving(pyvoy_server.port)
    process.kill()
    process.wait()
    pyvoy_server.process = None
    deadline = time.monotonic() + 20
    while envoys_serving(pyvoy_server.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert envoys_serving(pyvoy_server.port) == []  # (the port itself may already serve another test)


def test_an_unknown_server_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    env |= {"SCRAWN_SERVER": "nginx", "SCRAWN_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "serve"], env=env, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "SCRAWN_SERVER must be one of hypercorn, pyvoy, not 'nginx'" in output
    assert "Traceback" not in output
    assert not (tmp_path / "data").exists()
