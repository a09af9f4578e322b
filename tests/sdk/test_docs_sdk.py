"""The README's three-line integration and the Python examples of docs/sdk.md's sections on the seed
shapes, integrations, wallets, reservations and usage run as written against a real ``scrawn serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.sdk.conftest import put_tag, stored_events

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SECTIONS = (
    "## Shapes from the seed APIs",
    "## Integrations on the client",
    "## Wallets: `client.wallet`",
    "## Reservations",
    "## Usage: prices, records and queries",
)


def sdk_examples() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "sdk.md").read_text()
    parts = re.split(r"(?m)^(?=## )", text)
    found = []
    for part in parts:
        heading = part.splitlines()[0] if part else ""
        if heading in SECTIONS:
            found += [(heading, m.group(1)) for m in BLOCK.finditer(part)]
    return found


def run(server: ServerHandle, code: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")},
        "SCRAWN_API_KEY": server.live_key,
        "SCRAWN_BASE_URL": server.base_url,
    }
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_every_section_has_examples() -> None:
    assert {heading for heading, _ in sdk_examples()} == set(SECTIONS)
    assert len(sdk_examples()) >= 6


@pytest.mark.parametrize(("heading", "code"), sdk_examples(), ids=lambda v: v[:24])
def test_sdk_doc_example_runs(module_server: ServerHandle, heading: str, code: str) -> None:
    done = run(module_server, code)
    assert done.returncode == 0, f"{heading} example failed:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def test_readme_three_line_integration_runs(module_server: ServerHandle) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bill from Python", 1)[1].split("\n## ", 1)[0]
    [code] = BLOCK.findall(section)
    assert len([line for line in code.splitlines() if line.strip()]) == 3
    put_tag(module_server, "API_CALL", "0.5")
    before = len(stored_events(module_server, user_prefix="user_42"))
    done = run(module_server, code)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = stored_events(module_server, user_prefix="user_42")
    assert len(rows) == before + 1 and Decimal("0.5") in {r.debit for r in rows}
