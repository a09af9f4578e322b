"""The portal page in a real browser (Debian's headless Chromium through Playwright), on SQLite and
PostgreSQL: it renders at 360 px and on a desktop without sideways scrolling, its form is labelled and
reachable by keyboard, and axe-core finds nothing serious."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from scrawn import Scrawn
from tests.conftest import ServerHandle
from tests.dashboard.browser import new_page, serious_violations
from tests.dashboard.conftest import browser, screenshots

__all__ = ["browser", "screenshots"]  # the dashboard tests' fixtures, used here too


@pytest.mark.parametrize("width", [360, 1280])
def test_portal_renders(module_server: ServerHandle, browser: Any, screenshots: Path, width: int) -> None:
    who = f"browser_user_with_a_rather_long_identifier_{width}"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        client.basic_usage_event_consumer(user_id=who, debit=Decimal("123456.789"))
        client.wallet.credit(who, "500", description="a welcome credit with a long description to wrap")
        url = client.portal_link(who).url
    page = new_page(browser, module_server.base_url, width)
    answer = page.goto(url)
    assert answer is not None and answer.status == 200
    expect(page.get_by_role("heading", name="Your usage and balance")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("USD -1,229.56789")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow} px of sideways scrolling at {width} px"
    amount = page.get_by_label("Top-up amount (USD)")
    expect(amount).to_be_visible()
    for _ in range(6):  # the Pay button, then the top-up field, by keyboard alone
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "amount":
            break
    assert page.evaluate("() => document.activeElement.id") == "amount"
    assert serious_violations(page) == []
    page.screenshot(path=str(screenshots / f"portal-{width}.png"), full_page=True)
    page.context.close()
