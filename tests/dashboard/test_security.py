"""The dashboard's security model (docs/dashboard.md#security) over a real server on SQLite and PostgreSQL:
cookie flags, CSRF, who may sign in, expiry, revocation within 1 s, tenant isolation, escaping."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from scrawn.server.dashboard.sessions import ABSOLUTE_SECONDS, IDLE_SECONDS, Session, Sessions
from scrawn.server.keys.service import KeyService
from tests.conftest import SECRET, ServerHandle
from tests.dashboard.seed import SCRIPT_USER, Seeded, csrf_of, other_project_key, sign_in


def test_session_cookie_is_httponly_and_strict(module_server: ServerHandle, seeded: Seeded) -> None:
    client = httpx.Client(base_url=module_server.base_url)
    form = client.get("/dashboard/sign-in")
    answer = client.post(
        "/dashboard/sign-in", data={"csrf": csrf_of(form.text), "key": module_server.dash_key}
    )
    assert answer.status_code == 303
    flags = _flags(answer, "scrawn_dash")
    assert {"httponly", "samesite=strict", "Path=/dashboard"} <= flags and "secure" not in flags
    assert answer.headers["location"] == "/dashboard/live/overview"
    page = client.get("/dashboard/live/overview")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_cookie_is_secure_behind_https(module_server: ServerHandle) -> None:
    client = httpx.Client(base_url=module_server.base_url, headers={"x-forwarded-proto": "https"})
    form = client.get("/dashboard/sign-in")
    assert "secure" in _flags(form, "scrawn_dash_pre")
    nonce = form.headers["set-cookie"].split(";")[0]  # a Secure cookie: the client keeps it for https only
    answer = httpx.post(
        f"{module_server.base_url}/dashboard/sign-in",
        data={"csrf": csrf_of(form.text), "key": module_server.dash_key},
        headers={"x-forwarded-proto": "https", "cookie": nonce},
    )
    assert {"secure", "httponly", "samesite=strict"} <= _flags(answer, "scrawn_dash")


def _flags(response: httpx.Response, name: str) -> set[str]:
    """The attributes of the ``Set-Cookie`` that sets ``name`` (lower-cased, path kept as written)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            attributes = [a.strip() for a in header.split(";")[1:]]
            return {a if a.lower().startswith("path=") else a.lower() for a in attributes}
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers}")


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_a_form_without_the_right_csrf_token_is_refused(
    module_server: ServerHandle, seeded: Seeded, token: str | None
) -> None:
    client = sign_in(module_server.base_url, module_server.dash_key)
    user = f"csrf-{uuid.uuid4().hex[:8]}"
    data = {"user": user, "amount": "500"} | ({} if token is None else {"csrf": token})
    refused = client.post("/dashboard/live/customer/grant", data=data)
    assert refused.status_code == 403
    page = client.get("/dashboard/live/customer", params={"user": user})
    assert "No ledger entries yet" in page.text
    # The same form with the page's own token works.
    data["csrf"] = csrf_of(page.text)
    assert client.post("/dashboard/live/customer/grant", data=data).status_code == 303
    assert "5.00 USD" in client.get("/dashboard/live/customer", params={"user": user}).text


def test_sign_in_form_needs_its_csrf_token(module_server: ServerHandle) -> None:
    client = httpx.Client(base_url=module_server.base_url)
    client.get("/dashboard/sign-in")
    answer = client.post("/dashboard/sign-in", data={"csrf": "forged", "key": module_server.dash_key})
    assert answer.status_code == 403 and "scrawn_dash=" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("role", ["live", "test"])
def test_live_and_test_keys_cannot_sign_in(module_server: ServerHandle, role: str) -> None:
    client = httpx.Client(base_url=module_server.base_url)
    form = client.get("/dashboard/sign-in")
    key = module_server.live_key if role == "live" else module_server.test_key
    answer = client.post("/dashboard/sign-in", data={"csrf": csrf_of(form.text), "key": key})
    assert answer.status_code == 403
    assert "live and test keys cannot" in answer.text
    assert "scrawn_dash=" not in answer.headers.get("set-cookie", "")
    assert client.get("/dashboard/live/overview").status_code == 303


def test_signed_out_requests_go_to_sign_in_and_back(module_server: ServerHandle) -> None:
    client = httpx.Client(base_url=module_server.base_url)
    answer = client.get("/dashboard/live/events?user=alice")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%2Flive%2Fevents%3Fuser%3Dalice"
    form = client.get(answer.headers["location"])
    signed = client.post(
        "/dashboard/sign-in",
        data={
            "csrf": csrf_of(form.text),
            "key": module_server.dash_key,
            "next": "/dashboard/live/events?user=alice",
        },
    )
    assert signed.headers["location"] == "/dashboard/live/events?user=alice"
    # Never an open redirect.
    form = client.get("/dashboard/sign-in")
    elsewhere = client.post(
        "/dashboard/sign-in",
        data={"csrf": csrf_of(form.text), "key": module_server.dash_key, "next": "https://evil.example/"},
    )
    assert elsewhere.headers["location"] == "/dashboard/live/overview"


def test_sign_out_ends_the_session(module_server: ServerHandle) -> None:
    client = sign_in(module_server.base_url, module_server.dash_key)
    page = client.get("/dashboard/live/overview")
    assert client.post("/dashboard/sign-out", data={"csrf": "nope"}).status_code == 403
    out = client.post("/dashboard/sign-out", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert client.get("/dashboard/live/overview").status_code == 303


def _forged(server: ServerHandle, issued_ago: int, seen_ago: int) -> str:
    sessions = Sessions(SECRET)
    now = int(time.time())
    digest = KeyService(server.db(), SECRET).digest(server.dash_key)
    return sessions.encode(Session(digest, now - issued_ago, now - seen_ago, "n"))


def test_idle_and_absolute_expiry(module_server: ServerHandle) -> None:
    url = f"{module_server.base_url}/dashboard/live/overview"
    fresh = _forged(module_server, 10, 10)
    assert httpx.get(url, cookies={"scrawn_dash": fresh}).status_code == 200
    idle = _forged(module_server, IDLE_SECONDS + 10, IDLE_SECONDS + 1)
    assert httpx.get(url, cookies={"scrawn_dash": idle}).status_code == 303
    old = _forged(module_server, ABSOLUTE_SECONDS + 1, 1)
    assert httpx.get(url, cookies={"scrawn_dash": old}).status_code == 303
    tampered = fresh[:-2] + ("00" if not fresh.endswith("00") else "11")
    assert httpx.get(url, cookies={"scrawn_dash": tampered}).status_code == 303


def test_an_active_session_slides_its_idle_expiry(module_server: ServerHandle) -> None:
    """A request more than a minute after the last re-issue gets a new cookie: the idle clock restarts,
    the absolute one (the sign-in time) does not."""
    sessions = Sessions(SECRET)
    cookie = _forged(module_server, IDLE_SECONDS - 5, IDLE_SECONDS - 5)  # 5 s from idle expiry
    before = sessions.decode(cookie)
    assert before is not None
    answer = httpx.get(f"{module_server.base_url}/dashboard/live/overview", cookies={"scrawn_dash": cookie})
    assert answer.status_code == 200
    renewed = sessions.decode(answer.cookies["scrawn_dash"])
    assert renewed is not None and renewed.issued == before.issued and renewed.nonce == before.nonce
    assert renewed.seen - before.seen >= IDLE_SECONDS - 5
    assert {"httponly", "samesite=strict"} <= _flags(answer, "scrawn_dash")
    fresh = _forged(module_server, 10, 10)  # seen 10 s ago: no new cookie yet
    unchanged = httpx.get(f"{module_server.base_url}/dashboard/live/overview", cookies={"scrawn_dash": fresh})
    assert "scrawn_dash" not in unchanged.cookies


def test_revoking_the_key_ends_its_sessions_within_a_second(module_server: ServerHandle) -> None:
    key = module_server.create_key("dash", "doomed")
    doomed = sign_in(module_server.base_url, key)
    assert doomed.get("/dashboard/live/keys").status_code == 200
    admin = sign_in(module_server.base_url, module_server.dash_key)
    page = admin.get("/dashboard/live/keys")
    key_id = _key_id(page.text, "doomed")
    revoked = admin.post(f"/dashboard/live/keys/{key_id}/revoke", data={"csrf": csrf_of(page.text)})
    assert revoked.status_code == 303
    started = time.monotonic()
    while doomed.get("/dashboard/live/keys").status_code == 200:
        assert time.monotonic() - started < 1.0, "the revoked key's session outlived 1 s"
        time.sleep(0.05)


def _key_id(html: str, name: str) -> str:
    import re

    row = re.search(rf"<td>{name}</td>.*?/keys/([0-9a-f-]{{36}})/revoke", html, re.S)
    assert row, html
    return row.group(1)


def test_another_projects_key_sees_none_of_its_data(module_server: ServerHandle, seeded: Seeded) -> None:
    b = sign_in(module_server.base_url, other_project_key(module_server))
    for path in (
        f"/dashboard/live/events/{seeded.basic_event}",
        f"/dashboard/test/events/{seeded.test_event}",
    ):
        assert b.get(path).status_code == 404
    assert "alice" not in b.get("/dashboard/live/events").text
    assert "alice" not in b.get("/dashboard/live/customers").text
    alice = b.get("/dashboard/live/customer", params={"user": "alice"}).text
    assert "No ledger entries yet" in alice and "2.585" not in alice
    assert (
        b.post(
            f"/dashboard/live/events/{seeded.basic_event}/void",
            data={"csrf": csrf_of(alice), "reason": "guess"},
        ).status_code
        == 404
    )
    keys = b.get("/dashboard/live/keys").text
    assert module_server.dash_key[:14] not in keys
    assert "carol" not in b.get("/dashboard/live/quarantine").text
    assert b.get("/dashboard/live/webhooks/msg_guessed").status_code == 404
    a = sign_in(module_server.base_url, module_server.dash_key)
    assert "Void event" in a.get(f"/dashboard/live/events/{seeded.basic_event}").text  # B changed nothing


def test_html_in_user_ids_and_metadata_is_text(module_server: ServerHandle, seeded: Seeded) -> None:
    client = sign_in(module_server.base_url, module_server.dash_key)
    for page in (
        client.get("/dashboard/live/events").text,
        client.get("/dashboard/live/customers").text,
        client.get("/dashboard/live/customer", params={"user": SCRIPT_USER}).text,
        client.get("/dashboard/live/overview").text,
    ):
        assert SCRIPT_USER not in page
        assert "&lt;script&gt;" in page
    event = client.get(f"/dashboard/live/events/{seeded.ai_event}").text
    assert "<b>bold</b>" not in event and "&lt;b&gt;bold&lt;/b&gt;" in event


def test_mode_in_the_url_picks_the_data(module_server: ServerHandle, seeded: Seeded) -> None:
    client = sign_in(module_server.base_url, module_server.dash_key)
    live, test = client.get("/dashboard/live/events").text, client.get("/dashboard/test/events").text
    assert "alice" in live and "tess" not in live
    assert "tess" in test and "alice" not in test
    assert "TEST MODE" in test and "LIVE MODE" in live
    assert client.get(f"/dashboard/live/events/{seeded.test_event}").status_code == 404
    assert client.get("/dashboard/prod/events").status_code == 404


def test_sign_in_attempts_are_rate_limited(server: ServerHandle) -> None:
    client = httpx.Client(base_url=server.base_url)
    form = client.get("/dashboard/sign-in")
    token = csrf_of(form.text)
    wrong = "scrn_dash_" + "x" * 32
    codes = [
        client.post("/dashboard/sign-in", data={"csrf": token, "key": wrong}).status_code for _ in range(11)
    ]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    # Even the right key waits now.
    assert client.post("/dashboard/sign-in", data={"csrf": token, "key": server.dash_key}).status_code == 429
