"""Idle and half-open connections are closed by the server (SCRAWN_IDLE_TIMEOUT, SCRAWN_READ_TIMEOUT), not
held open forever: raw sockets that connect and then stall. Connection handling is the same whatever the
database, so one SQLite server serves."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle, make_server

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GIVE_UP = 60  # seconds a socket waits before the test fails: far above the 1 s timeouts under test


@pytest.fixture
def quick_server(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.env |= {"SCRAWN_IDLE_TIMEOUT": "1", "SCRAWN_READ_TIMEOUT": "1"}
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def closed_by_server(server: ServerHandle, first_bytes: bytes) -> bool:
    """Send ``first_bytes``, then nothing: True once the server closes the connection (EOF or reset)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=GIVE_UP) as sock:
        sock.sendall(first_bytes)
        try:
            while sock.recv(65536):  # whatever the server answers (its SETTINGS, a 408) until it closes
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return False
    return True


def test_a_connection_that_never_sends_a_request_is_closed(quick_server: ServerHandle) -> None:
    assert closed_by_server(quick_server, b"")


def test_a_bare_http2_preface_is_closed(quick_server: ServerHandle) -> None:
    assert closed_by_server(quick_server, H2_PREFACE)


def test_a_half_sent_http1_body_is_closed(quick_server: ServerHandle) -> None:
    head = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    assert closed_by_server(quick_server, head + b"only part of it")


def test_half_sent_http1_headers_are_closed(quick_server: ServerHandle) -> None:
    assert closed_by_server(quick_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(quick_server: ServerHandle) -> None:
    assert closed_by_server(quick_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")


def test_the_timeouts_must_be_positive_seconds() -> None:
    from scrawn.server.config import positive_seconds

    assert positive_seconds("SCRAWN_READ_TIMEOUT", "2.5") == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(ValueError, match="SCRAWN_READ_TIMEOUT must be positive seconds"):
            positive_seconds("SCRAWN_READ_TIMEOUT", bad)
