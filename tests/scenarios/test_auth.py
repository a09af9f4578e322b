"""Authentication and key management (DESIGN §2): every row of the auth table with its exact message on
every protocol, CreateAPIKey, hashed storage, expiry, and revocation seen by a second server process."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from scrawn._proto.auth.v1 import auth_pb2 as auth
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as query
from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import api_keys, metadata
from scrawn.server.keys.service import KeyService, hash_key
from tests.clients import (
    CREATE_KEY,
    QUERY,
    REGISTER,
    STREAM,
    ConnectClient,
    RpcError,
    all_clients,
    bearer,
)
from tests.conftest import (
    SECRET,
    ServerHandle,
    drop_pg_database,
    free_port,
    make_server,
    new_pg_database,
    run_async,
)

MSG_MISSING = "Missing Authorization header"
MSG_NOT_BEARER = 'Authorization header must be in format "Bearer <api_key>"'
MSG_PREFIX = "Invalid API key: Invalid key prefix — expected scrn_dash_, scrn_live_, or scrn_test_"
MSG_FORMAT = "Invalid API key: Invalid API key format"
MSG_NOT_FOUND = "Invalid API key: API key not found"
MSG_REVOKED = "API key has been revoked"
MSG_EXPIRED = "API key has expired"


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_ok: bool
) -> Iterator[ServerHandle]:
    """One real server per database for this module (the tests here do not interfere)."""
    data_dir = tmp_path_factory.mktemp(f"auth_{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    else:
        if not postgres_ok:
            pytest.skip("PostgreSQL unavailable")
        url, pg_name = new_pg_database()
    handle = make_server(url, data_dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        if pg_name:
            drop_pg_database(pg_name)


def _event() -> ev.RegisterEventRequest:
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId="auth-user", basicUsage=ev.BasicUsage(amount=1)
    )


def _stream_items() -> list[ev.StreamEventRequest]:
    return [
        ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="auth-user", basicUsage=ev.BasicUsage(amount=1))
    ]


def _call(client: Any, method: str, metadata: list[tuple[str, str]]) -> Any:
    """Call ``method`` with a valid request; authentication decides the outcome."""
    if method == REGISTER:
        return client.unary(REGISTER, _event(), metadata)
    if method == STREAM:
        return client.stream(STREAM, _stream_items(), metadata)
    if method == QUERY:
        return client.unary(QUERY, query.QueryEventsRequest(limit=1), metadata)
    return client.unary(CREATE_KEY, auth.CreateAPIKeyRequest(name="k", expiresIn=3600), metadata)


def _expect(client: Any, method: str, metadata: list[tuple[str, str]], code: str, message: str) -> None:
    with pytest.raises(RpcError) as err:
        _call(client, method, metadata)
    assert (err.value.code, err.value.message) == (code, message), (type(client).__name__, method, metadata)


async def _insert_key(
    server: ServerHandle, role: str, name: str, expires_in: int | None = None
) -> tuple[str, str]:
    db = server.db()
    try:
        async with db.write() as conn:
            record, key = await KeyService(db, SECRET).create_key(
                conn, server.project_id, role, name, expires_in
            )  # type: ignore[arg-type]
        return record.id, key
    finally:
        await db.dispose()


def new_key(
    server: ServerHandle, role: str, name: str = "k", expires_in: int | None = None
) -> tuple[str, str]:
    """(key id, plain key) of a fresh key made straight in the database."""
    return run_async(_insert_key(server, role, name, expires_in))  # type: ignore[no-any-return]


def revoke(server: ServerHandle, key_id: str) -> None:
    async def go() -> None:
        db = server.db()
        try:
            async with db.write() as conn:
                await KeyService.revoke_key(conn, server.project_id, key_id)
        finally:
            await db.dispose()

    run_async(go())


def insert_expired_key(server: ServerHandle, role: str) -> str:
    """A key whose expiry passed a minute ago, inserted directly (no waiting)."""
    from scrawn.server.keys.service import generate_key

    async def go() -> str:
        key = generate_key(role)  # type: ignore[arg-type]
        now = now_ms()
        db = server.db()
        try:
            async with db.write() as conn:
                await conn.execute(
                    api_keys.insert().values(
                        project_id=server.project_id,
                        id=f"expired-{key[-8:]}",
                        key_hash=hash_key(SECRET, key),
                        display=key[:14] + "…",
                        role=role,
                        name="expired",
                        created_at=now - 3_600_000,
                        expires_at=now - 60_000,
                        revoked_at=None,
                        last_used_at=None,
                    )
                )
        finally:
            await db.dispose()
        return key

    return run_async(go())  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------- the auth table

ALNUM31 = "Ab3" * 10 + "Z"  # 31 characters of [A-Za-z0-9]
BAD_HEADERS: list[tuple[str, list[tuple[str, str]], str, str]] = [
    ("no header", [], "unauthenticated", MSG_MISSING),
    ("empty header", [("authorization", "")], "unauthenticated", MSG_MISSING),
    ("basic scheme", [("authorization", "Basic x")], "unauthenticated", MSG_NOT_BEARER),
    ("bearer without key", [("authorization", "Bearer")], "unauthenticated", MSG_NOT_BEARER),
    (
        "key without scheme",
        [("authorization", "scrn_live_" + ALNUM31 + "x")],
        "unauthenticated",
        MSG_NOT_BEARER,
    ),
    ("wrong prefix prod", bearer("scrn_prod_" + ALNUM31 + "x"), "unauthenticated", MSG_PREFIX),
    ("wrong prefix sk", bearer("sk_live_" + ALNUM31 + "xyz"), "unauthenticated", MSG_PREFIX),
    ("too short", bearer("scrn_live_abc"), "unauthenticated", MSG_FORMAT),
    ("too long", bearer("scrn_live_" + ALNUM31 + "xy"), "unauthenticated", MSG_FORMAT),
    ("bad charset", bearer("scrn_live_" + ALNUM31 + "!"), "unauthenticated", MSG_FORMAT),
    ("bad charset dash", bearer("scrn_test_" + ALNUM31[:-1] + "-_"), "unauthenticated", MSG_FORMAT),
    ("unknown key", bearer("scrn_live_" + ALNUM31 + "q"), "unauthenticated", MSG_NOT_FOUND),
]


@pytest.mark.parametrize("method", [REGISTER, STREAM, QUERY, CREATE_KEY])
def test_auth_table_rows_exact_on_every_protocol(srv: ServerHandle, method: str) -> None:
    for client in all_clients(srv):
        with client:
            for _name, metadata, code, message in BAD_HEADERS:
                _expect(client, method, metadata, code, message)


def test_valid_keys_pass_authentication(srv: ServerHandle) -> None:
    for client in all_clients(srv):
        with client:
            res = _call(client, REGISTER, bearer(srv.live_key))
            assert res.message == "Event stored successfully"
            res = _call(client, STREAM, bearer(srv.test_key))
            assert (res.eventsProcessed, res.eventsFailed) == (1, 0)
            res = _call(client, QUERY, bearer(srv.dash_key))
            assert res.total >= 1


def test_revoked_key_is_refused_on_every_protocol(srv: ServerHandle) -> None:
    key_id, key = new_key(srv, "live", "to-revoke")
    revoke(srv, key_id)  # before first use: no process has it cached (warm caches: see the last test)
    for client in all_clients(srv):
        with client:
            for method in (REGISTER, STREAM, QUERY):
                _expect(client, method, bearer(key), "unauthenticated", MSG_REVOKED)


def test_revoking_a_dash_key_stops_key_management(srv: ServerHandle) -> None:
    key_id, key = new_key(srv, "dash", "dash-to-revoke")
    revoke(srv, key_id)
    for client in all_clients(srv):
        with client:
            _expect(client, CREATE_KEY, bearer(key), "unauthenticated", MSG_REVOKED)
    res = httpx.get(f"{srv.base_url}/api/v1/tags", headers={"authorization": f"Bearer {key}"})
    assert res.status_code == 401
    assert res.json()["message"] == MSG_REVOKED


def test_expired_key_is_refused_on_every_protocol(srv: ServerHandle) -> None:
    key = insert_expired_key(srv, "live")
    for client in all_clients(srv):
        with client:
            for method in (REGISTER, STREAM, QUERY):
                _expect(client, method, bearer(key), "unauthenticated", MSG_EXPIRED)


def test_key_with_short_expiry_works_then_expires(srv: ServerHandle) -> None:
    with ConnectClient(srv.base_url, binary=True) as c:
        # The first call must land before the key expires: on a busy machine a second may not be enough,
        # so a longer life is tried then (the key is cached by the call either way).
        for life in (1, 2, 4, 8):
            made = time.monotonic()
            _, key = new_key(srv, "test", f"short-{life}", expires_in=life)
            try:
                reply = _call(c, REGISTER, bearer(key))
            except RpcError as err:
                assert (err.code, err.message) == ("unauthenticated", MSG_EXPIRED)
                continue
            assert reply.message == "Event stored successfully"  # cached now
            break
        else:
            pytest.fail("a key living 8 s was never accepted")
        time.sleep(max(0.0, made + life + 0.6 - time.monotonic()))
        _expect(c, REGISTER, bearer(key), "unauthenticated", MSG_EXPIRED)


def test_revoked_wins_over_expired(srv: ServerHandle) -> None:
    key = insert_expired_key(srv, "test")
    revoke(srv, f"expired-{key[-8:]}")
    with ConnectClient(srv.base_url) as c:
        _expect(c, REGISTER, bearer(key), "unauthenticated", MSG_REVOKED)


# ----------------------------------------------------------------------------------------- permissions


def test_dash_key_cannot_ingest(srv: ServerHandle) -> None:
    for client in all_clients(srv):
        with client:
            _expect(
                client,
                REGISTER,
                bearer(srv.dash_key),
                "permission_denied",
                "Dashboard keys cannot ingest events",
            )
            _expect(
                client,
                STREAM,
                bearer(srv.dash_key),
                "permission_denied",
                "Dashboard keys cannot ingest events",
            )


def test_live_and_test_keys_cannot_create_keys(srv: ServerHandle) -> None:
    for client in all_clients(srv):
        with client:
            _expect(
                client,
                CREATE_KEY,
                bearer(srv.live_key),
                "permission_denied",
                "Live keys cannot create API keys",
            )
            _expect(
                client,
                CREATE_KEY,
                bearer(srv.test_key),
                "permission_denied",
                "Test keys cannot create API keys",
            )
            # a role header does not lift the restriction
            _expect(
                client,
                CREATE_KEY,
                [*bearer(srv.live_key), ("x-scrawn-role", "dashboard")],
                "permission_denied",
                "Live keys cannot create API keys",
            )


def test_live_and_test_keys_cannot_manage_pricing(srv: ServerHandle) -> None:
    for key, role in ((srv.live_key, "Live"), (srv.test_key, "Test")):
        res = httpx.get(f"{srv.base_url}/api/v1/tags", headers={"authorization": f"Bearer {key}"})
        assert res.status_code == 403
        assert res.json()["code"] == "permission_denied"
        assert res.json()["message"] == f"{role} keys cannot manage pricing"


# ----------------------------------------------------------------------------------------- CreateAPIKey


@pytest.mark.parametrize(
    ("role_header", "prefix"),
    [
        (None, "scrn_live_"),
        ("production", "scrn_live_"),
        ("dashboard", "scrn_dash_"),
        ("test", "scrn_test_"),
    ],
)
def test_create_api_key_roles(srv: ServerHandle, role_header: str | None, prefix: str) -> None:
    for client in all_clients(srv):
        with client:
            metadata = bearer(srv.dash_key) + ([("x-scrawn-role", role_header)] if role_header else [])
            before = now_ms()
            res = client.unary(
                CREATE_KEY, auth.CreateAPIKeyRequest(name=" ci key ", expiresIn=3600), metadata
            )
            assert res.apiKey.startswith(prefix) and len(res.apiKey) == 42
            assert res.apiKey[10:].isalnum() and res.apiKey[10:].isascii()
            assert res.name == "ci key"
            assert res.apiKeyId
            from datetime import datetime

            created = datetime.fromisoformat(res.createdAt.replace("Z", "+00:00")).timestamp() * 1000
            expires = datetime.fromisoformat(res.expiresAt.replace("Z", "+00:00")).timestamp() * 1000
            assert before - 5_000 <= created <= now_ms() + 5_000
            assert expires - created == pytest.approx(3_600_000, abs=2)
            _assert_key_works(srv, client, res.apiKey, prefix)


def _assert_key_works(srv: ServerHandle, client: Any, key: str, prefix: str) -> None:
    if prefix == "scrn_dash_":
        made = client.unary(CREATE_KEY, auth.CreateAPIKeyRequest(name="child", expiresIn=60), bearer(key))
        assert made.apiKey.startswith("scrn_live_")
        _expect(client, REGISTER, bearer(key), "permission_denied", "Dashboard keys cannot ingest events")
        return
    user = f"new-key-{key[-10:]}"
    req = ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=user, basicUsage=ev.BasicUsage(amount=7))
    assert client.unary(REGISTER, req, bearer(key)).message == "Event stored successfully"
    where = query.FilterGroup(
        conditions=[query.FilterCondition(field="userId", operator=query.EQ, value=user)]
    )
    mode = "live" if prefix == "scrn_live_" else "test"
    # the event landed in the new key's mode, and only there
    seen = client.unary(
        QUERY, query.QueryEventsRequest(where=where), bearer(srv.live_key if mode == "live" else srv.test_key)
    )
    other = client.unary(
        QUERY, query.QueryEventsRequest(where=where), bearer(srv.test_key if mode == "live" else srv.live_key)
    )
    assert (seen.total, other.total) == (1, 0)
    assert seen.rows[0].mode == mode


@pytest.mark.parametrize(
    ("role", "expires_in", "name", "field"),
    [
        ("admin", 3600, "k", "x-scrawn-role"),
        ("live", 3600, "k", "x-scrawn-role"),  # the header speaks dashboard|production|test, not key roles
        ("Production", 3600, "k", "x-scrawn-role"),
        ("production", 59, "k", "expiresIn"),
        ("production", 0, "k", "expiresIn"),
        ("production", -60, "k", "expiresIn"),
        ("production", 31_536_001, "k", "expiresIn"),
        ("production", 2**62, "k", "expiresIn"),
        ("production", 3600, "", "name"),
        ("production", 3600, "   ", "name"),
        ("production", 3600, "n" * 256, "name"),
    ],
)
def test_create_api_key_validation(
    srv: ServerHandle, role: str, expires_in: int, name: str, field: str
) -> None:
    for client in all_clients(srv):
        with client:
            with pytest.raises(RpcError) as err:
                client.unary(
                    CREATE_KEY,
                    auth.CreateAPIKeyRequest(name=name, expiresIn=expires_in),
                    [*bearer(srv.dash_key), ("x-scrawn-role", role)],
                )
            assert err.value.code == "invalid_argument"
            assert f"{field}:" in err.value.message, err.value.message


def test_create_api_key_bounds_are_inclusive(srv: ServerHandle) -> None:
    with ConnectClient(srv.base_url, binary=True) as c:
        for expires_in in (60, 31_536_000):
            res = c.unary(
                CREATE_KEY,
                auth.CreateAPIKeyRequest(name="n" * 255, expiresIn=expires_in),
                bearer(srv.dash_key),
            )
            assert res.name == "n" * 255
            assert res.apiKey.startswith("scrn_live_")


def test_keys_are_stored_hashed(srv: ServerHandle) -> None:
    with ConnectClient(srv.base_url) as c:
        made = c.unary(
            CREATE_KEY, auth.CreateAPIKeyRequest(name="hash-check", expiresIn=600), bearer(srv.dash_key)
        )
        # use it so that last-used bookkeeping has written to its row too
        _call(c, REGISTER, bearer(made.apiKey))
    plain = [srv.dash_key, srv.live_key, srv.test_key, made.apiKey]

    async def dump() -> tuple[str, dict[str, str]]:
        db = srv.db()
        try:
            async with db.read() as conn:
                text = []
                for table in metadata.sorted_tables:
                    for row in await conn.execute(select(table)):
                        text.append(repr(tuple(row)))
                hashes = {r.id: r.key_hash for r in await conn.execute(select(api_keys))}
            return "\n".join(text), hashes
        finally:
            await db.dispose()

    everything, hashes = run_async(dump())
    for key in plain:
        assert key not in everything
        assert key[10:] not in everything  # not even the random part
        assert key[10:20] not in everything
    assert hashes[made.apiKeyId] == hash_key(SECRET, made.apiKey)
    assert all(len(h) == 64 for h in hashes.values())


# ------------------------------------------------------------------------ revocation across processes


def test_revocation_reaches_a_second_process_within_one_second(srv: ServerHandle, tmp_path: Path) -> None:
    port = free_port()
    second = dataclasses.replace(
        srv,
        port=port,
        base_url=f"http://127.0.0.1:{port}",
        process=None,
        log_path=tmp_path / "second.log",
        env=srv.env | {"SCRAWN_PORT": str(port)},
    )
    second.start()
    try:
        key_id, key = new_key(srv, "live", "cross-process")
        with ConnectClient(srv.base_url) as one, ConnectClient(second.base_url) as two:
            # warm the key caches of both processes
            assert _call(one, REGISTER, bearer(key)).message == "Event stored successfully"
            assert _call(two, REGISTER, bearer(key)).message == "Event stored successfully"
            revoke(srv, key_id)
            revoked_at = time.monotonic()
            outcome: RpcError | None = None
            while time.monotonic() - revoked_at < 3:
                try:
                    _call(two, QUERY, bearer(key))
                except RpcError as e:
                    outcome = e
                    break
                time.sleep(0.02)
            elapsed = time.monotonic() - revoked_at
            assert outcome is not None, "the second process never saw the revocation"
            assert (outcome.code, outcome.message) == ("unauthenticated", MSG_REVOKED)
            assert elapsed <= 1.5, f"revocation took {elapsed:.2f}s to reach the second process"
            # and the first process refuses it too by now
            deadline = time.monotonic() + 1.5
            while True:
                try:
                    _call(one, QUERY, bearer(key))
                except RpcError as e:
                    assert (e.code, e.message) == ("unauthenticated", MSG_REVOKED)
                    break
                assert time.monotonic() < deadline, "the first process never saw the revocation"
                time.sleep(0.02)
        assert "Traceback" not in second.log()
    finally:
        second.stop()
