"""Secrets at rest: sealed values open only under the same server secret and for the same row."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrawn.errors import FailedPreconditionError
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.payments import config as configs
from scrawn.server.projects.service import create_project
from scrawn.server.secretbox import SecretBox

STRIPE = {"provider": "stripe", "apiKey": "sk_test_abcdef123456", "webhookSecret": "whsec_x"}


def test_a_sealed_value_opens_only_with_its_secret_and_row() -> None:
    box = SecretBox("secret-one-" + "x" * 20)
    sealed = box.seal("sk_live_123", "p1:live:payment_configs.api_key")
    assert "sk_live_123" not in sealed
    assert box.open(sealed, "p1:live:payment_configs.api_key") == "sk_live_123"
    assert box.seal("sk_live_123", "p1:live:payment_configs.api_key") != sealed  # a fresh nonce each time
    with pytest.raises(ValueError, match="does not open"):
        box.open(sealed, "p2:live:payment_configs.api_key")  # copied into another project's row
    with pytest.raises(ValueError, match="does not open"):
        SecretBox("secret-two-" + "x" * 20).open(sealed, "p1:live:payment_configs.api_key")
    with pytest.raises(ValueError):
        box.open("plain text", "p1:live:payment_configs.api_key")


async def test_a_configuration_sealed_under_another_secret_is_a_clear_precondition(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'scrawn.db'}")
    try:
        await migrate(db)
        async with db.write() as conn:
            project = await create_project(conn, "p")
            await configs.save(conn, SecretBox("first-" + "x" * 20), project, "live", STRIPE)
        async with db.read() as conn:
            found = await configs.load(conn, SecretBox("first-" + "x" * 20), project, "live")
            assert found is not None and found.api_key == STRIPE["apiKey"]
            with pytest.raises(FailedPreconditionError, match="configure the provider again"):
                await configs.load(conn, SecretBox("second-" + "x" * 20), project, "live")
    finally:
        await db.dispose()
