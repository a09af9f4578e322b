"""The Payments and Webhooks pages page their lists by keyset (``after=<ms>:<id>`` in the URL, filters
kept), and the Pricing page lists the built-in LLM price book: a real server on both databases."""

from __future__ import annotations

import html
import re
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from scrawn.server.dashboard.paging import PAGE
from scrawn.server.payments import repository as payment_rows
from scrawn.server.payments.types import CheckoutRecord
from scrawn.server.webhooks import repository as webhook_rows
from scrawn.server.webhooks.types import OutboxMessage
from tests.conftest import ServerHandle, run_async
from tests.dashboard.seed import csrf_of, sign_in

COUNT = PAGE + 12  # more than one page
BASE = 1_700_000_000_000
NEXT = re.compile(r'<a href="([^"]+)">Next page')


def _checkout(pid: str, mode: str, i: int, user: str) -> CheckoutRecord:
    at = BASE + i // 3 * 1000  # three checkouts share each time: the id breaks the tie
    return CheckoutRecord(
        pid, mode, str(uuid.uuid4()), user, "top_up", Decimal(100 + i), 100 + i, "USD", "stripe",
        None, None, None, "open", None, 0, None, at + 3_600_000, at, at,
    )  # fmt: skip


def _message(pid: str, mode: str, i: int) -> OutboxMessage:
    at = BASE + i // 3 * 1000
    payload = '{"type": "balance.low"}'
    return OutboxMessage(
        pid, mode, f"msg_{uuid.uuid4().hex}", "balance.low", payload, "delivered", 1, None, at, None, at
    )


@pytest.fixture(scope="module")
def rows(module_server: ServerHandle) -> dict[str, Any]:
    """COUNT checkouts (two users) and webhook messages in live mode, one of each in test mode."""
    pid = module_server.project_id
    checkouts = [_checkout(pid, "live", i, "ann" if i % 2 else "ben") for i in range(COUNT)]
    messages = [_message(pid, "live", i) for i in range(COUNT)]
    hidden = (_checkout(pid, "test", 0, "ann"), _message(pid, "test", 0))

    async def insert() -> None:
        db = module_server.db()
        try:
            async with db.write() as conn:
                for c in [*checkouts, hidden[0]]:
                    await payment_rows.insert_checkout(conn, c)
                for m in [*messages, hidden[1]]:
                    await webhook_rows.insert_message(conn, m)
        finally:
            await db.dispose()

    run_async(insert())
    return {"checkouts": checkouts, "messages": messages, "hidden": hidden}


def _walk(client: httpx.Client, url: str, found: re.Pattern[str]) -> tuple[list[str], int]:
    """Every id listed on ``url`` and the pages after it (following "Next page"), and the page count."""
    seen: list[str] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        page = client.get(next_url)
        assert page.status_code == 200, page.text
        pages += 1
        seen += found.findall(page.text)
        link = NEXT.search(page.text)
        next_url = html.unescape(link.group(1)) if link else None
    return seen, pages


def _newest_first(items: list[Any]) -> list[str]:
    return [x.id for x in sorted(items, key=lambda x: (-x.created_at, x.id))]


@pytest.fixture
def client(module_server: ServerHandle) -> httpx.Client:
    return sign_in(module_server.base_url, module_server.dash_key)


def test_checkouts_page_by_keyset_with_the_filter_kept(client: httpx.Client, rows: dict[str, Any]) -> None:
    found = re.compile(r"<code>/checkout/([0-9a-f-]{36})</code>")
    newest = sorted(rows["checkouts"], key=lambda c: (c.created_at, c.id), reverse=True)
    # Each once, in order, none skipped, over two pages; not the test-mode one.
    assert _walk(client, "/dashboard/live/payments", found) == ([c.id for c in newest], 2)
    ann = [c for c in newest if c.user_id == "ann"]
    seen_ann, _ = _walk(client, "/dashboard/live/payments?user=ann", found)
    assert seen_ann == [c.id for c in ann]
    bad = client.get("/dashboard/live/payments?after=yesterday")
    assert bad.status_code == 400 and "after" in bad.text


def test_webhook_messages_page_by_keyset_with_the_status_kept(
    client: httpx.Client, rows: dict[str, Any]
) -> None:
    found = re.compile(r'<a href="/dashboard/live/webhooks/(msg_[0-9a-f]+)">')
    seen, pages = _walk(client, "/dashboard/live/webhooks", found)
    assert seen == _newest_first(rows["messages"]) and pages == 2  # ties in time ordered by id
    assert rows["hidden"][1].id not in seen
    delivered, pages = _walk(client, "/dashboard/live/webhooks?status=delivered", found)
    assert delivered == seen and pages == 2
    assert _walk(client, "/dashboard/live/webhooks?status=failed", found) == ([], 1)


def _book(text: str) -> str:
    """The price book section of the Pricing page (the overrides table above lists models too)."""
    return text.split('id="book-h"', 1)[1]


def _book_row(text: str, model: str, provider: str) -> re.Match[str] | None:
    return re.search(rf"<tr><td>{model}</td><td>{provider}</td>(.*?)</tr>", _book(text), re.S)


def test_the_price_book_lists_a_known_model_and_marks_an_override(client: httpx.Client) -> None:
    whole = client.get("/dashboard/live/pricing")
    assert whole.status_code == 200
    shown = re.search(r"Showing (\d+) of (\d+) models", whole.text)
    assert shown and int(shown.group(1)) == 100 < int(shown.group(2))
    page = client.get("/dashboard/live/pricing", params={"model": "GPT-4O"})
    row = _book_row(page.text, "gpt-4o", "openai")
    assert row, page.text
    # USD per million tokens, exact: input, output, cache read.
    assert re.findall(r'<td class="r num">([^<]+)</td>', row.group(1))[:3] == ["2.5", "10", "1.25"]
    assert "overridden" not in row.group(1)
    assert "claude" not in _book(page.text)
    form = {"csrf": csrf_of(page.text), "model": "gpt-4o", "provider": "openai", "inputPerMillion": "3"}
    assert client.post("/dashboard/live/pricing/models", data=form).status_code == 303
    row = _book_row(client.get("/dashboard/live/pricing?model=gpt-4o").text, "gpt-4o", "openai")
    assert row and "overridden" in row.group(1)
    none = client.get("/dashboard/live/pricing?model=no-such-model-xyz")
    assert "No built-in model matches" in none.text
    long = client.get("/dashboard/live/pricing", params={"model": "m" * 300})
    assert long.status_code == 400 and "model" in long.text
