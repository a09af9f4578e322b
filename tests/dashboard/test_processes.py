"""Dashboard sessions across server processes: two ``scrawn serve`` on one database (SQLite and PostgreSQL)
share sessions (the cookie is signed under ``SCRAWN_SECRET``), and revoking the dash key on one ends its
sessions on both within 1 s, each process's key cache warm when it happens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from tests.conftest import ServerHandle, free_port
from tests.dashboard.seed import csrf_of, sign_in
from tests.dashboard.test_security import _key_id

REVOCATION_BOUND = 1.0  # seconds: DESIGN §2, docs/dashboard.md#security-model


@pytest.fixture
def second(server: ServerHandle) -> Iterator[ServerHandle]:
    """Another server process on the first one's database and secret, on its own port."""
    port = free_port()
    handle = replace(
        server,
        port=port,
        base_url=f"http://127.0.0.1:{port}",
        process=None,
        log_path=server.data_dir / "second.log",
        env=server.env | {"SCRAWN_PORT": str(port)},
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def test_revoking_a_key_ends_its_sessions_on_every_process(
    server: ServerHandle, second: ServerHandle
) -> None:
    key = server.create_key("dash", "doomed")
    doomed = sign_in(server.base_url, key)
    cookie = doomed.cookies["scrawn_dash"]
    on_second = httpx.Client(base_url=second.base_url, cookies={"scrawn_dash": cookie})
    # One session, served by both processes: each has the key in its cache now.
    assert doomed.get("/dashboard/live/keys").status_code == 200
    assert on_second.get("/dashboard/live/keys").status_code == 200

    admin = sign_in(second.base_url, second.dash_key)  # revoked through the other process
    page = admin.get("/dashboard/live/keys")
    revoked = admin.post(
        f"/dashboard/live/keys/{_key_id(page.text, 'doomed')}/revoke", data={"csrf": csrf_of(page.text)}
    )
    assert revoked.status_code == 303
    done = time.monotonic()
    # A request sent once the bound has passed must be refused by every process, however slow it runs.
    time.sleep(REVOCATION_BOUND)
    for client in (doomed, on_second):
        answer = client.get("/dashboard/live/keys")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/dashboard/sign-in")
    assert time.monotonic() - done >= REVOCATION_BOUND
    # and the key itself is refused at sign-in on either process
    for base in (server.base_url, second.base_url):
        client = httpx.Client(base_url=base)
        form = client.get("/dashboard/sign-in")
        assert (
            client.post("/dashboard/sign-in", data={"csrf": csrf_of(form.text), "key": key}).status_code
            == 401
        )
