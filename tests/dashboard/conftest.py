"""Fixtures of the dashboard tests: one seeded server per module and database, and a headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.dashboard.seed import Seeded, seed

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def seeded(module_server: ServerHandle) -> Seeded:
    return seed(module_server)


@pytest.fixture
def browser() -> Iterator[object]:
    """Per test: Playwright's sync API runs an event loop while open, and the module's server fixtures
    (set up before it) use asyncio.run."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests write a screenshot of each page (``SCRAWN_SCREENSHOTS`` to keep them)."""
    chosen = os.environ.get("SCRAWN_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
