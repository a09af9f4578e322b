"""Browser helpers: sign in through the form, run axe-core inside the page, keep a screenshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).parents[1] / "ts" / "node_modules" / "axe-core" / "axe.min.js"


def new_page(browser: Any, base_url: str, width: int = 1280) -> Any:
    # The page's CSP allows only its own scripts; the test injects axe, so its context bypasses the CSP.
    context = browser.new_context(
        base_url=base_url, viewport={"width": width, "height": 900}, bypass_csp=True
    )
    return context.new_page()


def sign_in(page: Any, key: str) -> None:
    page.goto("/dashboard/sign-in")
    page.get_by_label("Dashboard key").fill(key)
    navigate(page, page.get_by_role("button", name="Sign in"))
    page.wait_for_url("**/dashboard/live/overview")


def navigate(page: Any, target: Any) -> None:
    """Click a link or a form's submit button and wait until the page it leads to has loaded: a check
    made right after a bare click could read the old page (or a form filled there would be lost)."""
    with page.expect_navigation():
        target.click()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the current page (none is the goal)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def check_page(page: Any, shots: Path, name: str) -> None:
    found = serious_violations(page)
    assert not found, f"{name}: {found}"
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
