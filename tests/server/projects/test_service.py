"""``projects/service.py`` on both databases: settings checked with the flag they came from, a currency
change refused once the project keeps money (the ledger answers), and ``bootstrap``'s first key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from scrawn.errors import NotFoundError, ValidationError
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import KeyService
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import LedgerEntry
from scrawn.server.projects import service
from tests.conftest import run_async
from tests.server.fresh import Fresh


@pytest.mark.parametrize(
    ("check", "value", "field", "problem"),
    [
        (service.check_currency, "EURO", "--currency", "three-letter ISO 4217"),
        (service.check_rate, "1e3", "--usd-rate", "positive decimal"),
        (service.check_rate, "0", "--usd-rate", "greater than 0"),
        (service.check_rate, "1000000001", "--usd-rate", "at most 1000000000"),
        (service.check_amount_unit, "cents", "--amount-unit", "minor or major"),
        (service.check_name, "a\x07b", "--name", "without control characters"),
        (
            service.check_time_zone,
            "Mars/Olympus_Mons",
            "--time-zone",
            "unknown time zone 'Mars/Olympus_Mons'",
        ),
        (service.check_time_zone, "../etc/passwd", "--time-zone", "IANA time zone name"),
        (service.check_time_zone, "", "--time-zone", "IANA time zone name"),
    ],
)
def test_checks_name_the_flag(check: object, value: str, field: str, problem: str) -> None:
    assert callable(check)
    with pytest.raises(ValidationError) as caught:
        check(value)
    assert caught.value.field == field
    assert problem in caught.value.message


def test_checks_return_the_stored_value() -> None:
    assert service.check_currency(" eur ") == "EUR"
    assert service.check_rate("0.920") == Decimal("0.92")
    assert service.check_late_window(3650) == 3650
    assert service.check_time_zone(" Asia/Kolkata ") == "Asia/Kolkata"
    with pytest.raises(ValidationError) as named:
        service.check_time_zone("Nowhere/City", "timeZone")  # the dashboard's form field
    assert named.value.field == "timeZone"
    with pytest.raises(ValidationError, match="1 to 3650 days"):
        service.check_late_window(0)


async def test_update_project_applies_and_reads_back(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        got = await service.update_project(
            conn, project_id, name=" Renamed ", currency="eur", usd_rate="0.92", late_window=7
        )
        assert (got.name, got.currency, got.usd_rate, got.late_window_days) == (
            "Renamed",
            "EUR",
            Decimal("0.92"),
            7,
        )
        assert await service.late_window_days(conn, project_id) == 7
        assert got.time_zone == "UTC"  # the default
        got = await service.update_project(conn, project_id, time_zone="America/St_Johns")
        assert (got.time_zone, got.name) == ("America/St_Johns", "Renamed")
        with pytest.raises(ValidationError, match="--time-zone"):
            await service.update_project(conn, project_id, time_zone="America/Atlantis")
        assert (await service.load(conn, project_id)).time_zone == "America/St_Johns"
        got = await service.update_project(conn, project_id, currency="GBP")
        assert (got.currency, got.usd_rate) == ("GBP", None)  # a rate is for one currency
        with pytest.raises(ValidationError, match="a USD project needs no rate"):
            await service.update_project(conn, project_id, currency="USD", usd_rate="2")
        with pytest.raises(NotFoundError):
            await service.update_project(conn, "no-such-project", name="x")
        with pytest.raises(NotFoundError):
            await service.late_window_days(conn, "no-such-project")


async def test_currency_is_fixed_once_the_ledger_holds_money(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        assert await service.money_kept(conn, project_id) is None
        entry = LedgerEntry(project_id, "live", "u1", "grant", Decimal(5), idempotency_key="k1")
        await ledger.post_keyed(conn, entry, require_available=False)
        assert await service.money_kept(conn, project_id) == "ledger entries"
        with pytest.raises(ValidationError) as caught:
            await service.update_project(conn, project_id, currency="EUR")
        assert caught.value.field == "--currency"
        assert "already has ledger entries in USD" in caught.value.message
        assert (await service.update_project(conn, project_id, currency="usd")).currency == "USD"


def test_bootstrap_creates_a_project_and_a_working_dash_key(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data", secret="s")

    async def main() -> None:
        db = Database(settings.resolved_database_url)
        try:
            created = await service.bootstrap(db, settings, "first", only_if_empty=True)
            assert created is not None
            project_id, key = created
            assert await service.bootstrap(db, settings, "second", only_if_empty=True) is None
            caller = await KeyService(db, "s").authenticate(f"Bearer {key}")
            assert (caller.project_id, caller.role) == (project_id, "dash")
            async with db.read() as conn:
                assert await service.list_projects(conn) == [(project_id, "first")]
        finally:
            await db.dispose()

    run_async(main())
