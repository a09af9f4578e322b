"""Seeded data for the dashboard tests, sent the way clients send it (Connect over HTTP and the JSON API):
events of each kind, a quarantined one, wallets with credit lots and a reservation, and data in test mode."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.wallet.v1 import wallet_pb2 as w
from scrawn.server.db.schema import events
from scrawn.server.keys.service import KeyService
from scrawn.server.projects.service import create_project, update_project
from tests.clients import REGISTER, STREAM, WALLET, ConnectClient, RpcError, bearer
from tests.conftest import SECRET, ServerHandle, run_async

SCRIPT_USER = '<script>alert("x")</script>'


@dataclass
class Seeded:
    basic_event: str  # alice's 250-cent event
    ai_event: str
    test_event: str  # tess's, in test mode


def _register(c: ConnectClient, key: str, user: str, usage: ev.BasicUsage) -> str:
    request = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId=user, basicUsage=usage, idempotencyKey=uuid.uuid4().hex
    )
    return str(c.unary(REGISTER, request, bearer(key)).eventId)


def seed(server: ServerHandle) -> Seeded:
    dash = {"authorization": f"Bearer {server.dash_key}"}
    httpx.post(
        f"{server.base_url}/api/v1/tags", json={"key": "CALL", "price": "1.5"}, headers=dash
    ).raise_for_status()
    with ConnectClient(server.base_url) as c:
        basic = _register(c, server.live_key, "alice", ev.BasicUsage(amount=250))
        _register(c, server.live_key, "alice", ev.BasicUsage(expr="tag(CALL)"))
        _register(c, server.live_key, SCRIPT_USER, ev.BasicUsage(amount=100))
        ai = ev.StreamEventRequest(
            type=ev.AI_TOKEN_USAGE,
            userId="alice",
            idempotencyKey=uuid.uuid4().hex,
            aiTokenUsage=ev.AITokenUsage(
                model="gpt-4o",
                inputTokens=1000,
                outputTokens=200,
                inputAmount=3,
                outputAmount=4,
                metadata='{"note": "<b>bold</b>"}',
            ),
        )
        c.stream(STREAM, [ai], bearer(server.live_key))
        with contextlib.suppress(RpcError):  # priced by a tag that does not exist yet: kept in the quarantine
            _register(c, server.live_key, "carol", ev.BasicUsage(expr="tag(LATER)"))
        credit = w.CreditRequest(
            userId="bob", amount="1000", idempotencyKey=uuid.uuid4().hex, expiresAt=int(time.time()) + 86_400
        )
        c.unary(WALLET + "Credit", credit, bearer(server.live_key))
        hold = w.CreateReservationRequest(userId="bob", amount="200", idempotencyKey=uuid.uuid4().hex)
        c.unary(WALLET + "CreateReservation", hold, bearer(server.live_key))
        test = _register(c, server.test_key, "tess", ev.BasicUsage(amount=77))
    kept = httpx.get(f"{server.base_url}/api/v1/quarantine", headers=dash)
    assert "carol" in kept.text, kept.text
    ai_id = _event_id_of(server, "gpt-4o")
    return Seeded(basic, ai_id, test)


def _event_id_of(server: ServerHandle, model: str) -> str:
    async def read() -> str:
        db = server.db()
        try:
            async with db.read() as conn:
                found = await conn.scalar(
                    select(events.c.id).where(
                        events.c.project_id == server.project_id, events.c.model == model
                    )
                )
        finally:
            await db.dispose()
        return str(found)

    found: str = run_async(read())
    return found


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


def sign_in(base_url: str, key: str) -> httpx.Client:
    """An HTTP client signed in to the dashboard with ``key`` (asserts it worked)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False)
    form = client.get("/dashboard/sign-in")
    answer = client.post("/dashboard/sign-in", data={"csrf": csrf_of(form.text), "key": key})
    assert answer.status_code == 303, answer.text
    return client


def other_project_key(server: ServerHandle, name: str = "other", currency: str | None = None) -> str:
    """The dash key of a new, empty project on the server's database (in ``currency`` when given)."""

    async def create() -> str:
        db = server.db()
        try:
            async with db.write() as conn:
                project = await create_project(conn, name)
                if currency:
                    await update_project(conn, project, currency=currency)
                _, key = await KeyService(db, SECRET).create_key(conn, project, "dash", "b")
        finally:
            await db.dispose()
        return key

    key: str = run_async(create())
    return key
