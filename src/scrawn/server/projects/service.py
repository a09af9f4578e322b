"""Projects: the tenant, its settings (currency, amount unit, USD rate, late-event window, time zone) and
its first key. Validation lives here; SQL in ``repository.py``; keys themselves in the ``keys`` domain."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError, ValidationError
from scrawn.money import format_amount
from scrawn.server import clock
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.events import repository as events_repository
from scrawn.server.keys.service import KeyService
from scrawn.server.ledger import repository as ledger_repository
from scrawn.server.payments import repository as payments_repository
from scrawn.server.pricing.currency import USD
from scrawn.server.projects import repository
from scrawn.server.projects.types import LATE_WINDOW_MAX, LATE_WINDOW_MIN, ProjectMoney
from scrawn.server.usage import repository as usage_repository

AMOUNT_UNITS = ("minor", "major")
MAX_RATE = Decimal(1_000_000_000)
MAX_RATE_PLACES = 18
MAX_NAME = 255
# Plain decimal text only: no sign, exponent, NaN, infinity or float suffixes.
_RATE_TEXT = re.compile(rf"[0-9]{{1,10}}(\.[0-9]{{1,{MAX_RATE_PLACES}}})?")


async def create_project(conn: AsyncConnection, name: str) -> str:
    return await repository.insert(conn, name)


async def list_projects(conn: AsyncConnection) -> list[tuple[str, str]]:
    return await repository.ids_and_names(conn)


async def bootstrap(
    db: Database, settings: Settings, name: str, *, only_if_empty: bool, unless_named: bool = False
) -> tuple[str, str] | None:
    """Migrate, then create a project and its first dash key (shown once). None, creating nothing, when
    ``only_if_empty`` and a project exists, or ``unless_named`` and a project named ``name`` exists."""
    if db.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await migrate(db)
    async with db.write() as conn:
        found = await list_projects(conn)
        if (only_if_empty and found) or (unless_named and name in {n for _, n in found}):
            return None
        project_id = await create_project(conn, name)
        _, key = await KeyService(db, settings.resolved_secret()).create_key(
            conn, project_id, "dash", "initial"
        )
    return project_id, key


async def load(conn: AsyncConnection, project_id: str) -> ProjectMoney:
    found = await repository.get(conn, project_id)
    if found is None:
        raise NotFoundError(f"project not found: {project_id}")
    return found


async def late_window_days(conn: AsyncConnection, project_id: str) -> int:
    """The project's late-event window in days (one small read, for ingest)."""
    days = await repository.late_window_days(conn, project_id)
    if days is None:
        raise NotFoundError(f"project not found: {project_id}")
    return days


async def list_all(conn: AsyncConnection) -> list[ProjectMoney]:
    return await repository.list_all(conn)


async def money_kept(conn: AsyncConnection, project_id: str) -> str | None:
    """What already holds amounts in the project's currency (which a currency change would misread): each
    owning domain answers for its own table."""
    for holds, what in (
        (events_repository.any_event, "events"),
        (ledger_repository.any_ledger_entry, "ledger entries"),
        (usage_repository.any_record, "usage records"),
        (payments_repository.any_config, "a payment configuration"),
    ):
        if await holds(conn, project_id):
            return what
    return None


def _fail(field_name: str, problem: str) -> ValidationError:
    return ValidationError(field_name, problem, context="Project settings")


def check_currency(value: str, field_name: str = "--currency") -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise _fail(field_name, "must be a three-letter ISO 4217 code such as EUR")
    return code


def check_rate(value: str, field_name: str = "--usd-rate") -> Decimal:
    """A positive plain decimal string (never a float), at most 1e9 and 18 decimal places."""
    text = value.strip()
    if not _RATE_TEXT.fullmatch(text):
        raise _fail(
            field_name,
            f"must be a positive decimal such as 0.92 (digits and one point, at most {MAX_RATE_PLACES} "
            "decimal places)",
        )
    rate = Decimal(text)
    if rate <= 0:
        raise _fail(field_name, "must be greater than 0")
    if rate > MAX_RATE:
        raise _fail(field_name, f"must be at most {format_amount(MAX_RATE)}")
    return Decimal(format_amount(rate))


def check_amount_unit(value: str, field_name: str = "--amount-unit") -> str:
    if value not in AMOUNT_UNITS:
        raise _fail(field_name, "must be minor or major")
    return value


def check_late_window(value: int, field_name: str = "--late-window") -> int:
    if not LATE_WINDOW_MIN <= value <= LATE_WINDOW_MAX:
        raise _fail(field_name, f"must be {LATE_WINDOW_MIN} to {LATE_WINDOW_MAX} days")
    return value


def check_time_zone(value: str, field_name: str = "--time-zone") -> str:
    """An IANA zone name that this server's tz data knows (``Europe/Berlin``, ``UTC``)."""
    try:
        clock.time_zone(value.strip())
    except ValueError as e:
        raise _fail(field_name, str(e)) from None
    return value.strip()


def check_name(value: str, field_name: str = "--name") -> str:
    if not value.strip() or len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise _fail(field_name, f"must be 1 to {MAX_NAME} characters, without control characters")
    return value.strip()


async def update_project(
    conn: AsyncConnection,
    project_id: str,
    *,
    name: str | None = None,
    currency: str | None = None,
    usd_rate: str | None = None,
    amount_unit: str | None = None,
    late_window: int | None = None,
    time_zone: str | None = None,
) -> ProjectMoney:
    """Validate and apply ``scrawn projects set`` (in the caller's write transaction)."""
    current = await load(conn, project_id)
    changes: dict[str, repository.SettingValue] = {}
    if late_window is not None:
        changes["late_window_days"] = check_late_window(late_window)
    if name is not None:
        changes["name"] = check_name(name)
    if time_zone is not None:
        changes["time_zone"] = check_time_zone(time_zone)
    if amount_unit is not None:
        changes["amount_unit"] = check_amount_unit(amount_unit)
    new_currency = current.currency if currency is None else check_currency(currency)
    rate = None if usd_rate is None else check_rate(usd_rate)
    if new_currency != current.currency:
        kept = await money_kept(conn, project_id)
        if kept is not None:
            raise _fail(
                "--currency",
                f"the project already has {kept} in {current.currency}, and a project keeps its ledger "
                "in one currency (create another project with `scrawn init`)",
            )
        changes["currency"] = new_currency
        changes["usd_rate"] = None  # a rate is for one currency: the new one needs its own
    if rate is not None:
        if new_currency == USD and rate != 1:
            raise _fail("--usd-rate", "a USD project needs no rate (1 US cent is 1 cent)")
        changes["usd_rate"] = None if new_currency == USD else format_amount(rate)
    if changes:
        await repository.update_settings(conn, project_id, changes)
    return await load(conn, project_id)
