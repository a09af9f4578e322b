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
    balances = dict(re.findall(r"│ (alice|bob|carol|dave)\s+│ (-?[\d.]+)\s+│", out))
    # alice: 25 + the legacy 0.1f; bob: tag 0.5 + (3 + 10) x 4; carol: 1200 x 0.00025 + 300 x 0.001 + 0.5;
    # dave, through the Python SDK: tag 0.5, then a credit of 100 and a wallet debit of 5
    assert balances == {"alice": "-25.1", "bob": "-52.5", "carol": "-1.1", "dave": "94.5"}
    assert re.search(
        r'basic_usage_event_consumer\(user_id="dave", debit=tag\("API_CALL"\)\)\s+│ event [0-9a-f-]{36}', out
    )
    assert re.search(r'wallet.balance\("dave"\)\s+│ available 94.5', out)
    # It ends with the three commands that run it for real: init (and a live key), serve, a first SDK call.
    steps = out[out.index("Run it for real") :].splitlines()[1:]
    assert steps[0].startswith("1. scrawn init && scrawn keys create --name backend --role live")
    assert steps[1].startswith("2. scrawn serve")
    assert steps[2].startswith("3. SCRAWN_API_KEY=scrn_live_… python -c 'from scrawn import Scrawn;")
    assert "basic_usage_event_consumer(" in steps[2]
    assert not list(tmp_path.iterdir())  # the throwaway database is gone
