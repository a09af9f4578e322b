"""The dashboard in headless Chromium (Playwright) over a real server on SQLite and PostgreSQL: every page
renders the seeded data, passes axe-core without serious findings, and every action works end to end."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import ServerHandle
from tests.dashboard.browser import check_page, navigate, new_page, sign_in
from tests.dashboard.seed import SCRIPT_USER, Seeded


def test_every_page_renders_and_is_accessible(
    module_server: ServerHandle, seeded: Seeded, browser: Any, screenshots: Path
) -> None:
    page = new_page(browser, module_server.base_url)
    page.goto("/dashboard/sign-in")
    check_page(page, screenshots, "sign-in")
    sign_in(page, module_server.dash_key)
    expect(page.get_by_text("LIVE MODE", exact=True)).to_be_visible()
    assert "3.585 USD" in page.content()  # outstanding: 2.50 + 0.015 + 0.07 + 1.00, exact
    check_page(page, screenshots, "overview")
    navigate(page, page.get_by_role("link", name="Events", exact=True))
    expect(page.get_by_role("cell", name="gpt-4o")).to_be_visible()
    check_page(page, screenshots, "events")
    page.goto(f"/dashboard/live/events/{seeded.ai_event}")
    expect(page.get_by_role("heading", name="Token arithmetic")).to_be_visible()
    check_page(page, screenshots, "event")
    navigate(page, page.get_by_role("link", name="Customers", exact=True))
    expect(page.get_by_role("link", name=SCRIPT_USER)).to_be_visible()  # shown as text, never run
    check_page(page, screenshots, "customers")
    navigate(page, page.get_by_role("link", name="bob", exact=True))
    expect(page.get_by_role("heading", name="Credit lots")).to_be_visible()
    assert "8.00 USD" in page.content()  # available: 10.00 granted − 2.00 held
    check_page(page, screenshots, "customer")
    navigate(page, page.get_by_role("link", name="Keys", exact=True))
    check_page(page, screenshots, "keys")


def test_actions_work_end_to_end(module_server: ServerHandle, seeded: Seeded, browser: Any) -> None:
    page = new_page(browser, module_server.base_url)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, module_server.dash_key)

    # Void an event: its charge is credited back and the page says why.
    page.goto(f"/dashboard/live/events/{seeded.basic_event}")
    page.get_by_label("Why void it?").fill("sent twice")
    navigate(page, page.get_by_role("button", name="Void event"))
    expect(page.get_by_text("'sent twice'")).to_be_visible()
    assert "VOIDED" in page.content()

    # Grant credit and set a cap on a new customer.
    page.goto("/dashboard/live/customer?user=dora")
    page.get_by_label("Amount (minor units of USD, exact)").fill("1234.5")
    navigate(page, page.get_by_role("button", name="Grant credit"))
    expect(page.get_by_role("cell", name="grant")).to_be_visible()
    assert "12.345 USD" in page.content()
    page.get_by_label("Monthly spend cap (minor units; empty = none)").fill("5000")
    navigate(page, page.get_by_role("button", name="Save cap and alert"))
    assert "50.00 USD" in page.content()

    # Create a key (shown once) and revoke it.
    page.goto("/dashboard/live/keys")
    page.get_by_label("Name").fill("ci-rotation")
    page.get_by_label("Role").select_option("live")
    navigate(page, page.get_by_role("button", name="Create key"))
    created = page.get_by_label("New key").input_value()
    assert re.fullmatch(r"scrn_live_[A-Za-z0-9]{32}", created)
    page.goto("/dashboard/live/keys")
    assert created not in page.content()
    navigate(page, page.get_by_role("button", name="Revoke key ci-rotation"))
    expect(page.get_by_role("row", name=re.compile("ci-rotation.*revoked"))).to_be_visible()


def test_live_test_switch_shows_only_that_modes_data(
    module_server: ServerHandle, seeded: Seeded, browser: Any, screenshots: Path
) -> None:
    page = new_page(browser, module_server.base_url, width=360)
    sign_in(page, module_server.dash_key)
    page.goto("/dashboard/live/events")
    expect(page.get_by_role("link", name="alice").first).to_be_visible()
    navigate(page, page.get_by_role("link", name="Switch to test"))
    page.wait_for_url("**/dashboard/test/events")
    expect(page.get_by_text("TEST MODE", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="tess")).to_be_visible()
    expect(page.get_by_role("link", name="alice")).to_have_count(0)
    # 360 px wide: the page itself never scrolls sideways (wide tables scroll in their own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    check_page(page, screenshots, "events-test-360px")


PAGES_360 = {
    "overview": "overview",
    "events": "events",
    "customers": "customers",
    "customer": "customer?user=bob",
    "pricing": "pricing",
    "keys": "keys",
    "payments": "payments",
    "webhooks": "webhooks",
    "quarantine": "quarantine",
}


@pytest.mark.parametrize("mode", ["live", "test"])
def test_every_page_at_360px_shows_its_mode_and_fits(
    module_server: ServerHandle, seeded: Seeded, browser: Any, screenshots: Path, mode: str
) -> None:
    """Signed in by keyboard alone, then every page 360 px wide: the mode and the switch to the same page
    in the other mode are visible, the page never scrolls sideways, and axe-core finds nothing serious."""
    page = new_page(browser, module_server.base_url, width=360)
    page.goto("/dashboard/sign-in")
    for _ in range(10):  # Tab until the key field has the focus, type, press Enter
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.name") == "key":
            break
    page.keyboard.type(module_server.dash_key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/live/overview")
    other = "test" if mode == "live" else "live"
    for name, path in PAGES_360.items():
        page.goto(f"/dashboard/{mode}/{path}")
        expect(page.get_by_text(f"{mode.upper()} MODE", exact=True)).to_be_visible()
        switch = page.get_by_role("link", name=f"Switch to {other}")
        expect(switch).to_be_visible()
        section = "customers" if name == "customer" else name
        assert switch.get_attribute("href") == f"/dashboard/{other}/{section}"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{name}: {width} px wide at 360 px"
        check_page(page, screenshots, f"{name}-{mode}-360px")
