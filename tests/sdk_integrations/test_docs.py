"""Every Python example in docs/sdk-middleware.md and docs/sdk-ai.md runs as written, against a real
``scrawn serve`` (and the fake LLM provider, through ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL``).
A block whose first line starts with ``# (sketch`` is not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import FakeProvider, stored

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, int, str]]:
    found = []
    for name in ("sdk-middleware.md", "sdk-ai.md"):
        for i, match in enumerate(BLOCK.finditer((DOCS / name).read_text())):
            code = match.group(1)
            if not code.startswith("# (sketch"):
                found.append((name, i, code))
    return found


@pytest.mark.parametrize(
    ("doc", "index", "code"), examples(), ids=lambda v: str(v)[:20] if isinstance(v, str) else v
)
def test_example_runs(
    doc: str, index: int, code: str, module_server: ServerHandle, fake: FakeProvider
) -> None:
    env = {
        **os.environ,
        "SCRAWN_API_KEY": module_server.live_key,
        "SCRAWN_BASE_URL": module_server.base_url,
        "OPENAI_BASE_URL": f"{fake.base_url}/v1",
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "PYTHONPATH": str(DOCS.parent),
    }
    before = len(stored(module_server, "user_123"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{doc} example {index} failed:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr and "not billed" not in done.stderr, done.stderr[-3000:]
    if "user_123" in code:
        assert len(stored(module_server, "user_123")) > before, f"{doc} example {index} billed nothing"
