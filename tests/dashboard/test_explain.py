"""``scrawn explain`` and the dashboard's event page show one lineage (``events/lineage.py``): the seeded
AI event's token arithmetic, its ledger entry and what priced it, the same in both."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from tests.conftest import ServerHandle
from tests.dashboard.seed import Seeded, sign_in


def test_explain_and_the_event_page_show_the_same_lineage(
    module_server: ServerHandle, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scrawn.server import cli

    for name in [k for k in os.environ if k.startswith("SCRAWN_")]:
        monkeypatch.delenv(name)
    for name in ("SCRAWN_DATABASE_URL", "SCRAWN_DATA_DIR", "SCRAWN_SECRET"):
        monkeypatch.setenv(name, module_server.env[name])
    args = ["explain", seeded.ai_event[:8], "--project", module_server.project_id]
    done = CliRunner().invoke(cli.app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert found["event"]["event_id"] == seeded.ai_event and found["event"]["model"] == "gpt-4o"
    assert found["tokens"] == [
        {"kind": "Input", "count": 1000, "debit": "3"},
        {"kind": "Output", "count": 200, "debit": "4"},
        {"kind": "Input cache", "count": 0, "debit": "0"},
        {"kind": "Output cache", "count": 0, "debit": "0"},
    ]
    assert found["ledger_entry"]["kind"] == "usage" and found["ledger_entry"]["amount"] == "-7"
    assert found["reversal"] is None

    text = CliRunner().invoke(cli.app, args).stdout
    assert "Input" in text and "1000" in text and f"ledger entry {found['ledger_entry']['id']}" in text

    page = sign_in(module_server.base_url, module_server.dash_key).get(
        f"/dashboard/live/events/{seeded.ai_event}"
    )
    assert "Token arithmetic" in page.text and "1000" in page.text and "200" in page.text
