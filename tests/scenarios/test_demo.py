"""`scrawn demo`, the README's first command, runs end to end and bills what it says it bills."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_bills_every_kind_of_event(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")} | {"COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.count("Event stored successfully") == 4
    assert "duplicate=True, same id=True" in out
    assert "Processed 3 events (2 succeeded, 1 failed)" in out
    assert "userId: must be a non-empty string" in out
    balances = dict(re.findall(r"│ (alice|bob|carol)\s+│ (-[\d.]+)\s+│", out))
    # alice: 25 + the legacy 0.1f; bob: tag 0.5 + (3 + 10) x 4; carol: 1200 x 0.00025 + 300 x 0.001 + 0.5
    assert balances == {"alice": "-25.1", "bob": "-52.5", "carol": "-1.1"}
    assert not list(tmp_path.iterdir())  # the throwaway database is gone
