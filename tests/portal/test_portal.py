"""The customer portal end to end, on SQLite and PostgreSQL: a real ``scrawn serve``, links made through the
SDK (sync and async) and the JSON API, pages read over HTTP, and Pay through the checkout flow with Lemon
Squeezy replaced by the local HTTP server of tests/payments."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from scrawn import AsyncScrawn, PortalLink, Scrawn
from scrawn.ai import flush_ai, track_ai
from scrawn.errors import UnauthenticatedError, ValidationError
from scrawn.server.portal.token import sign, verify
from scrawn.server.secretbox import SecretBox
from tests.conftest import SECRET, ServerHandle, run_async
from tests.payments.fake_providers import FakeLemonSqueezy

LS_KEY, LS_SECRET = "ls_test_key_" + "k" * 20, "ls-signing-secret"


@pytest.fixture(scope="module")
def ls(module_server: ServerHandle) -> Iterator[FakeLemonSqueezy]:
    with FakeLemonSqueezy(LS_KEY, LS_SECRET) as fake:
        config = {
            "provider": "lemonsqueezy",
            "apiKey": LS_KEY,
            "webhookSecret": LS_SECRET,
            "storeId": "1234",
            "variantId": "5678",
            "apiBase": fake.base_url,
        }
        put = httpx.put(
            f"{module_server.base_url}/api/v1/payments/config", json=config, headers=dash(module_server)
        )
        assert put.status_code == 200, put.text
        yield fake


def dash(server: ServerHandle) -> dict[str, str]:
    return {"authorization": f"Bearer {server.dash_key}"}


def user(prefix: str = "cust") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def seed(server: ServerHandle, who: str, debit: str, model: str) -> None:
    with Scrawn(server.live_key, server.base_url) as client:
        client.basic_usage_event_consumer(user_id=who, debit=Decimal(debit))
        track_ai(
            client,
            user_id=who,
            model=model,
            input_tokens=10,
            output_tokens=5,
            input_debit="1",
            output_debit="2",
        )
        assert flush_ai(client, 30)
        client.wallet.credit(who, "100", description=f"welcome credit for {who}")


def page(url: str) -> httpx.Response:
    return httpx.get(url, follow_redirects=False)


def test_link_shows_only_that_customer(module_server: ServerHandle) -> None:
    alice, bob = user("alice"), user("bob")
    seed(module_server, alice, "1234.5", "gpt-4o")
    seed(module_server, bob, "777", "claude-sonnet-4")
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        link = client.portal_link(alice)
    assert isinstance(link, PortalLink)
    assert link.url.startswith(f"{module_server.base_url}/portal/")
    assert timedelta(minutes=59) < link.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    answer = page(link.url)
    assert answer.status_code == 200, answer.text
    text = answer.text
    assert alice in text and bob not in text and "claude-sonnet-4" not in text and "777" not in text
    assert "gpt-4o" in text
    # 1234.5 + 3 cents billed, 100 granted: exact, in dollars
    assert "USD -11.375" in text
    assert "USD 12.345" in text  # the basic event, never float-rounded
    assert f"welcome credit for {alice}" in text and "Credit granted" in text
    assert (
        answer.headers["referrer-policy"] == "no-referrer" and answer.headers["cache-control"] == "no-store"
    )
    assert 'href="/portal/assets/portal.css"' in text
    css = httpx.get(f"{module_server.base_url}/portal/assets/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_html_in_a_user_id_is_escaped(module_server: ServerHandle) -> None:
    who = "<script>alert(1)</script>"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        client.wallet.credit(who, "5")
        text = page(client.portal_link(who).url).text
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def _retag(url: str, change: Any) -> str:
    """The link with its payload changed by ``change`` and the original signature kept."""
    base, token = url.rsplit("/", 1)
    payload, tag = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(body)
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{base}/{forged}.{tag}"


def test_dead_links_are_bare_404s(module_server: ServerHandle) -> None:
    victim, other = user(), user()
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        client.wallet.credit(victim, "5")
        url = client.portal_link(other).url
    assert page(url).status_code == 200
    token = url.rsplit("/", 1)[1]
    forged = [
        _retag(url, lambda b: b.update(u=victim)),  # another customer under the same signature
        _retag(url, lambda b: b.update(e=b["e"] + 86_400_000)),  # a longer life
        url[:-2] + ("AA" if not url.endswith("AA") else "BB"),  # a changed signature
        f"{module_server.base_url}/portal/{token.split('.')[0]}",  # no signature
        f"{module_server.base_url}/portal/not-a-token",
    ]
    for bad in forged:
        answer = page(bad)
        assert answer.status_code == 404 and answer.text == "Not Found", bad
        assert httpx.post(f"{bad}/pay", data={"amount": "5"}).status_code == 404


def test_expired_link_is_404(module_server: ServerHandle) -> None:
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        link = client.portal_link(user(), expires_in=60)
    assert page(link.url).status_code == 200
    # the same claims, genuinely signed with the server's secret, but a millisecond past their expiry
    claims = verify(SecretBox(SECRET), link.url.rsplit("/", 1)[1], 0)
    assert claims is not None
    past = sign(SecretBox(SECRET), replace(claims, expires_at=int(time.time() * 1000) - 1))
    assert page(f"{module_server.base_url}/portal/{past}").status_code == 404
    # and a link that outlives the key that made it dies with the key
    # (8 s of life: a link made and opened on a busy machine must still find the key alive)
    short_key = module_server.create_key("live", "short", expires_in=8)
    dies_at = time.monotonic() + 8  # made before this line, so dead by then
    with Scrawn(short_key, module_server.base_url) as client:
        url = client.portal_link(user()).url
    assert page(url).status_code == 200
    time.sleep(max(0.0, dies_at - time.monotonic()) + 1)
    assert page(url).status_code == 404 and page(url).text == "Not Found"


def test_revoking_the_key_kills_its_links(module_server: ServerHandle) -> None:
    made = httpx.post(
        f"{module_server.base_url}/api/v1/keys",
        json={"name": "portal", "role": "live"},
        headers=dash(module_server),
    ).json()
    with Scrawn(made["key"], module_server.base_url) as client:
        url = client.portal_link(user()).url
    assert page(url).status_code == 200
    revoked = httpx.post(
        f"{module_server.base_url}/api/v1/keys/{made['id']}/revoke", headers=dash(module_server)
    )
    assert revoked.status_code == 200
    assert page(url).status_code == 404  # checked against the database on every request


def test_json_route_and_validation(module_server: ServerHandle) -> None:
    base = f"{module_server.base_url}/api/v1/payments/portal-links"
    made = httpx.post(base, json={"userId": "json_user", "expiresIn": 600}, headers=dash(module_server))
    assert made.status_code == 201, made.text
    assert page(made.json()["url"]).status_code == 200
    for body, field in (
        ({}, "userId"),
        ({"userId": "u", "expiresIn": 604_801}, "expiresIn"),
        ({"userId": "u", "expiresIn": 59}, "expiresIn"),
        ({"userId": "u", "returnUrl": "ftp://x"}, "returnUrl"),
    ):
        answer = httpx.post(base, json=body, headers=dash(module_server))
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    refused = httpx.post(
        base, json={"userId": "u"}, headers={"authorization": f"Bearer {module_server.live_key}"}
    )
    assert refused.status_code == 403
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        with pytest.raises(ValidationError) as e:
            client.portal_link("u", expires_in=8 * 86_400)
        assert e.value.field == "expires_in"
        with pytest.raises(ValidationError) as e:
            client.portal_link("u", return_url="nope")
        assert e.value.field == "return_url"


def test_async_client(module_server: ServerHandle) -> None:
    who = user()

    async def go() -> PortalLink:
        async with AsyncScrawn(module_server.test_key, module_server.base_url) as client:
            return await client.portal_link(who, return_url="https://example.com/back", expires_in=7 * 86_400)

    link = run_async(go())
    assert timedelta(days=6, hours=23) < link.expires_at - datetime.now(UTC) <= timedelta(days=7)
    text = page(link.url).text
    assert who in text and "test mode" in text


def test_pay_goes_through_the_checkout(module_server: ServerHandle, ls: FakeLemonSqueezy) -> None:
    who = user("payer")
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        client.basic_usage_event_consumer(user_id=who, debit=Decimal("250.5"))
        url = client.portal_link(who).url
    text = page(url).text
    assert "Pay USD 2.505" in text
    answer = httpx.post(f"{url}/pay", follow_redirects=False)
    assert answer.status_code == 303
    checkout = answer.headers["location"]
    assert re.fullmatch(rf"{re.escape(module_server.base_url)}/checkout/[0-9a-f-]{{36}}", checkout)
    session = httpx.get(checkout, follow_redirects=False)
    assert session.status_code == 302 and session.headers["location"].startswith(ls.base_url)
    mine = [
        r.json()["data"]["attributes"]
        for r in ls.api_requests("POST", "/v1/checkouts")
        if r.json()["data"]["attributes"]["checkout_data"]["custom"]["scrawn_user_id"] == who
    ]
    assert [m["custom_price"] for m in mine] == [251]  # 250.5 cents, rounded up to a whole cent
    assert mine[0]["product_options"]["redirect_url"] == url  # back to the portal afterwards

    # Top up 25 dollars: the customer types currency units; the project counts cents
    topped = httpx.post(f"{url}/pay", data={"amount": "25"}, follow_redirects=False)
    assert topped.status_code == 303
    prices = [
        r.json()["data"]["attributes"]["custom_price"]
        for r in ls.api_requests("POST", "/v1/checkouts")
        if r.json()["data"]["attributes"]["checkout_data"]["custom"]["scrawn_user_id"] == who
    ]
    assert prices[-1] == 2500
    bad = httpx.post(f"{url}/pay", data={"amount": "-3"}, follow_redirects=False)
    assert bad.status_code == 400 and "amount" in bad.text and who in bad.text


def test_roles_and_keys_over_rpc(module_server: ServerHandle) -> None:
    with Scrawn(module_server.dash_key, module_server.base_url) as client:
        assert page(client.portal_link(user()).url).status_code == 200
    with (
        Scrawn("scrn_live_" + "x" * 32, module_server.base_url) as client,
        pytest.raises(UnauthenticatedError),
    ):
        client.portal_link(user())


def test_concurrent_async_links_differ(module_server: ServerHandle) -> None:
    async def go() -> list[PortalLink]:
        async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
            return list(await asyncio.gather(*(client.portal_link(f"u{i}") for i in range(3))))

    links = run_async(go())
    assert len({link.url for link in links}) == 3


def test_usage_days_are_the_project_time_zones(module_server: ServerHandle) -> None:
    """Kiritimati is UTC+14: its day differs from the UTC day for most of each UTC day."""
    who, zone = user("zoned"), ZoneInfo("Pacific/Kiritimati")
    seed(module_server, who, "5", "gpt-4o")
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        link = client.portal_link(who)
    module_server.set_time_zone("Pacific/Kiritimati")
    try:
        before = datetime.now(zone).date().isoformat()
        text = page(link.url).text
        after = datetime.now(zone).date().isoformat()
    finally:
        module_server.set_time_zone("UTC")
    assert "(last 30 days, Pacific/Kiritimati)" in text
    day = re.search(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>2 events</td>", text)
    assert day is not None and day.group(1) in (before, after), text
