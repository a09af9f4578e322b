"""Every dashboard page over a real server on SQLite and PostgreSQL: each shows its mode and a switch to the
same page in the other mode, every form refuses a POST without its CSRF token, an empty project's pages say
what to do next, the Overview lists what needs attention, the Events filters live in the URL (a tag too),
the Keys page pages by keyset, and money reads in the project's currency."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any, cast

import httpx
import pytest
from starlette.routing import Route

from scrawn.server.dashboard.routes import routes
from scrawn.server.dashboard.web import Dashboard
from scrawn.server.keys.service import KeyService
from scrawn.server.webhooks import repository as webhook_rows
from scrawn.server.webhooks.types import OutboxMessage
from tests.conftest import SECRET, ServerHandle, run_async
from tests.dashboard.seed import SCRIPT_USER, Seeded, csrf_of, other_project_key, sign_in

NEXT = re.compile(r'<a href="([^"]+)">Next page')


@pytest.fixture(scope="module")
def failed(module_server: ServerHandle, seeded: Seeded) -> dict[str, str]:
    """One webhook message per mode that failed every retry (its id by mode)."""
    ids = {mode: f"msg_{uuid.uuid4().hex}" for mode in ("live", "test")}

    async def insert() -> None:
        db = module_server.db()
        try:
            async with db.write() as conn:
                for mode, message_id in ids.items():
                    message = OutboxMessage(
                        module_server.project_id, mode, message_id, "balance.low", "{}", "failed", 8,
                        None, None, "HTTP 500", 1_700_000_000_000,
                    )  # fmt: skip
                    await webhook_rows.insert_message(conn, message)
        finally:
            await db.dispose()

    run_async(insert())
    return ids


@pytest.fixture
def client(module_server: ServerHandle) -> httpx.Client:
    return sign_in(module_server.base_url, module_server.dash_key)


def _pages(seeded: Seeded, failed: dict[str, str], mode: str) -> list[tuple[str, str]]:
    """(section the switch keeps, path) of every page a signed-in operator can open."""
    event = seeded.basic_event if mode == "live" else seeded.test_event
    return [
        ("overview", "overview"),
        ("events", "events?user=alice"),
        ("events", f"events/{event}"),
        ("customers", "customers"),
        ("customers", "customer?user=alice"),
        ("pricing", "pricing"),
        ("keys", "keys"),
        ("payments", "payments"),
        ("webhooks", "webhooks"),
        ("webhooks", f"webhooks/{failed[mode]}"),
        ("quarantine", "quarantine"),
    ]


@pytest.mark.parametrize("mode", ["live", "test"])
def test_every_page_shows_its_mode_and_the_switch(
    client: httpx.Client, seeded: Seeded, failed: dict[str, str], mode: str
) -> None:
    other = "test" if mode == "live" else "live"
    for section, path in _pages(seeded, failed, mode):
        page = client.get(f"/dashboard/{mode}/{path}")
        assert page.status_code == 200, (path, page.text[:300])
        assert f'<span class="mode-badge" aria-label="Mode: {mode}">{mode.upper()} MODE</span>' in page.text
        assert f'<a class="switch" href="/dashboard/{other}/{section}">Switch to {other}</a>' in page.text, (
            path
        )
        assert f'<body class="mode-{mode}">' in page.text


def _post_routes() -> list[str]:
    """Every POST path of the dashboard, from its route table (so a new form is covered too)."""
    table = routes(cast(Dashboard, _Unused()))
    return sorted(
        r.path for r in table if isinstance(r, Route) and r.methods is not None and "POST" in r.methods
    )


class _Unused:
    """Stands in for the Dashboard while only the route table's paths are read."""

    def page(self, handler: Any) -> Any:
        return handler

    def __getattr__(self, name: str) -> Any:
        return lambda *_: None


@pytest.mark.parametrize("token", [None, "wrong"])
def test_every_form_refuses_a_post_without_its_csrf_token(
    client: httpx.Client, seeded: Seeded, failed: dict[str, str], token: str | None
) -> None:
    paths = _post_routes()
    assert len(paths) >= 17 and "/dashboard/{mode}/events/{id}/void" in paths
    keys = client.get("/dashboard/live/keys").text
    key_id = re.search(r"/keys/([0-9a-f-]{36})/revoke", keys)
    assert key_id
    ids = {"events": seeded.basic_event, "keys": key_id.group(1), "webhooks": failed["live"]}
    data = {"reason": "csrf", "user": "csrf_user", "amount": "500", "name": "CSRF", "key": "T", "price": "1"}
    data |= {} if token is None else {"csrf": token}
    for path in paths:
        section = path.split("/")[3] if path.count("/") > 2 else ""
        url = path.replace("{mode}", "live").replace("{id}", ids.get(section, "x"))
        answer = client.post(url, data=data)
        assert answer.status_code == 403, (url, answer.status_code)
        assert "This form expired" in answer.text
    # Nothing happened: the event is not voided, the key not revoked, no credit granted.
    assert "Void event" in client.get(f"/dashboard/live/events/{seeded.basic_event}").text
    assert f"/keys/{key_id.group(1)}/revoke" in client.get("/dashboard/live/keys").text
    assert "No ledger entries yet" in client.get("/dashboard/live/customer?user=csrf_user").text


def test_an_empty_project_says_what_to_do_next(module_server: ServerHandle) -> None:
    empty = sign_in(module_server.base_url, other_project_key(module_server, "empty"))
    hints = {
        "overview": ["Nothing in this period yet.", "No spend this month yet. Send events"],
        "events": ["No live events yet. Send one with a live key"],
        "events?user=nobody": ["No event matches these filters. Clear them"],
        "customers": ["No customers in live mode yet."],
        "customer?user=nobody": ["No ledger entries yet: grant credit above", "No reservations."],
        "pricing": ["No tags yet.", "No named expressions.", "No event prices.", "No overrides"],
        "payments": ["No payment provider in live mode", "No checkouts yet. Create a checkout link"],
        "webhooks": ["No endpoint:", "No webhook messages. Payments, refunds"],
        "quarantine": ["Nothing waits: every live event was priced."],
    }
    for path, expected in hints.items():
        text = html.unescape(empty.get(f"/dashboard/live/{path}").text)
        for hint in expected:
            assert f'<p class="empty">{hint}' in text, (path, hint)


def test_the_overview_lists_what_needs_attention(
    module_server: ServerHandle, seeded: Seeded, failed: dict[str, str], client: httpx.Client
) -> None:
    live = client.get("/dashboard/live/overview").text
    assert '<a href="/dashboard/live/quarantine">1 quarantined event</a> waits' in live  # carol's
    assert '<a href="/dashboard/live/webhooks?status=failed">1 webhook delivery</a> failed' in live
    assert "No payment provider in live mode" in live and "Nothing needs attention" not in live
    listed = client.get("/dashboard/live/webhooks?status=failed").text
    assert failed["live"] in listed and failed["test"] not in listed
    empty = sign_in(module_server.base_url, other_project_key(module_server, "calm")).get(
        "/dashboard/live/overview"
    )
    assert "quarantined event" not in empty.text and "webhook deliver" not in empty.text


def test_event_filters_live_in_the_url(client: httpx.Client, seeded: Seeded) -> None:
    def listed(**query: str) -> list[str]:
        page = client.get("/dashboard/live/events", params=query)
        assert page.status_code == 200, page.text
        return re.findall(r'href="/dashboard/live/events/([0-9a-f-]{36})"', page.text)

    everything = listed()
    assert seeded.basic_event in everything and seeded.ai_event in everything
    assert listed(model="gpt-4o") == [seeded.ai_event]
    assert listed(type="AI_TOKEN_USAGE") == [seeded.ai_event]
    assert set(listed(user="alice")) == set(everything) - set(listed(user='<script>alert("x")</script>'))
    called = listed(tag="CALL")  # alice's tag(CALL) event only
    assert len(called) == 1 and called[0] not in (seeded.basic_event, seeded.ai_event)
    assert listed(tag="NO_SUCH_TAG") == []
    bad = client.get("/dashboard/live/events", params={"tag": "call()"})
    assert bad.status_code == 400 and "tag" in bad.text
    assert listed(voided="yes") == [] and listed(voided="no") == everything
    assert listed(since="2000-01-01") == everything and listed(until="2000-01-01") == []
    bad = client.get("/dashboard/live/events", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.text
    # The form shows the filters it was given, so the URL is the view.
    shown = client.get("/dashboard/live/events", params={"tag": "CALL", "user": "alice"}).text
    assert 'name="tag" value="CALL"' in shown and 'name="user" value="alice"' in shown


def test_the_keys_page_pages_by_keyset(module_server: ServerHandle, client: httpx.Client) -> None:
    async def create() -> list[str]:
        db = module_server.db()
        service = KeyService(db, SECRET)
        try:
            async with db.write() as conn:
                return [
                    (await service.create_key(conn, module_server.project_id, "test", f"bulk-{i}"))[0].id
                    for i in range(55)
                ]
        finally:
            await db.dispose()

    made = run_async(create())
    seen: list[str] = []
    next_url: str | None = "/dashboard/live/keys"
    pages = 0
    while next_url:
        page = client.get(next_url)
        assert page.status_code == 200
        pages += 1
        seen += re.findall(r"/keys/([0-9a-f-]{36})/revoke", page.text)
        link = NEXT.search(page.text)
        next_url = html.unescape(link.group(1)) if link else None
    assert pages >= 2 and len(seen) == len(set(seen)) and set(made) <= set(seen)
    bad = client.get("/dashboard/live/keys", params={"after": "nope"})
    assert bad.status_code == 400 and "after" in bad.text


def test_money_reads_in_the_projects_currency(module_server: ServerHandle) -> None:
    yen = sign_in(module_server.base_url, other_project_key(module_server, "yen", currency="JPY"))
    page = yen.get("/dashboard/live/customer", params={"user": "kenji"})
    assert "Amount (minor units of JPY, exact)" in page.text
    granted = yen.post(
        "/dashboard/live/customer/grant",
        data={"csrf": csrf_of(page.text), "user": "kenji", "amount": "1234.5"},
    )
    assert granted.status_code == 303
    text = yen.get("/dashboard/live/customer", params={"user": "kenji"}).text
    assert "1,234.5 JPY" in text and "USD" not in text.split("<main", 1)[1]


def test_the_customer_pages_show_the_wallet_and_the_usage_chart(client: httpx.Client) -> None:
    listed = html.unescape(client.get("/dashboard/live/customers").text)
    bob = re.search(r">bob</a></td>(.*?)</tr>", listed, re.S)
    assert bob, listed
    # balance, available, held, spent this month, cap: 10.00 granted, 2.00 held by the reservation
    assert re.findall(r"[−\d.,]+ USD|—", bob.group(1))[:3] == ["10.00 USD", "8.00 USD", "2.00 USD"]
    alice = html.unescape(client.get("/dashboard/live/customer", params={"user": "alice"}).text)
    chart = re.search(r'<svg class="chart"[^>]*aria-label="([^"]+)"', alice)
    assert chart and chart.group(1).startswith("Daily usage of alice, last 30 days (UTC).")
    assert chart.group(1).endswith(": 2.585 USD")  # today: 250 + 1.5 (tag CALL) + 3 + 4 cents, exact
    top = html.unescape(client.get("/dashboard/live/overview").text).split('id="top"', 1)[1]
    assert top.index(">alice</a>") < top.index(f">{SCRIPT_USER}</a>")  # 2.585 USD spent, then 1.00 USD
