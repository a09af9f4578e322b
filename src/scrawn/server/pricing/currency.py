"""A project's currency and the rate that turns the USD model price book into it (DESIGN §6).

The LLM price book and the project's model price overrides are US cents. A project in another currency
sets ``usd_rate``: how many of its *minor* units one US cent is worth (EUR at 0.92: 1 US cent = 0.92 euro
cents). A ``major`` project keeps its ledger in whole units, so a US cent becomes rate ÷ (minor units per
major unit) of them: the same scale a checkout uses to turn the ledger into the provider's minor units.
Tag prices, expressions and explicit amounts are already in the project's currency and are never converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError, NotFoundError, ValidationError
from scrawn.money import format_amount
from scrawn.server.db.schema import events, ledger_entries, payment_configs, projects, usage_records

USD = "USD"
AMOUNT_UNITS = ("minor", "major")
MAX_RATE = Decimal(1_000_000_000)
MAX_RATE_PLACES = 18
MAX_NAME = 255
# ISO 4217 currencies without a minor unit (Stripe's list of zero-decimal currencies): one scale for converted
# prices and for checkouts.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())  # noqa: SIM905


def minor_per_major(currency: str) -> int:
    """Minor units in one unit of ``currency``: 100 for USD, 1 for JPY."""
    return 1 if currency in ZERO_DECIMAL else 100


# Plain decimal text only: no sign, exponent, NaN, infinity or float suffixes.
_RATE_TEXT = re.compile(rf"[0-9]{{1,10}}(\.[0-9]{{1,{MAX_RATE_PLACES}}})?")
# Wide enough that a rate (≤ 28 digits) times a price book amount is exact: the one rounding comes later.
_EXACT = Context(prec=200)
SET_RATE_HINT = "set a USD conversion rate with `scrawn projects set --usd-rate`"
# Events reported more than this many days ago are refused (docs/events.md#late-events).
LATE_WINDOW_DEFAULT, LATE_WINDOW_MIN, LATE_WINDOW_MAX = 35, 1, 3650


class NoUsdRate(FailedPreconditionError):
    """A non-USD project priced by the USD price book before its conversion rate was set."""

    def __init__(self, currency: str) -> None:
        super().__init__(
            f"the project's currency is {currency} but model prices are USD: {SET_RATE_HINT} "
            f"({currency} minor units per US cent)"
        )


@dataclass(frozen=True)
class Conversion:
    """US cents → the project's amount unit, and what a priced event or record keeps of it."""

    factor: Decimal  # project amount units per US cent
    recorded: dict[str, str] = field(default_factory=dict)  # {} = USD cents, nothing converted

    def apply(self, cents: Decimal) -> Decimal:
        """Exact: the caller rounds once, when it writes."""
        return cents if not self.recorded else _EXACT.multiply(cents, self.factor)


IDENTITY = Conversion(Decimal(1))


@dataclass(frozen=True)
class ProjectMoney:
    id: str
    name: str
    currency: str
    amount_unit: str
    usd_rate: Decimal | None  # None: not set (1 for USD)
    late_window_days: int = LATE_WINDOW_DEFAULT

    def minor_per_major(self) -> int:
        return minor_per_major(self.currency)

    def conversion(self) -> Conversion:
        """How the USD price book becomes this project's money; NoUsdRate when it cannot yet."""
        if self.currency == USD:
            rate = Decimal(1)  # a stored rate cannot change what a US cent is worth in US cents
        elif self.usd_rate is None:
            raise NoUsdRate(self.currency)
        else:
            rate = self.usd_rate
        if self.amount_unit != "major":
            if self.currency == USD:
                return IDENTITY
            return Conversion(rate, {"currency": self.currency, "usdRate": format_amount(rate)})
        factor = _EXACT.divide(rate, Decimal(self.minor_per_major()))  # exact: a power of ten
        recorded = {"currency": self.currency, "usdRate": format_amount(rate), "amountUnit": "major"}
        return Conversion(factor, recorded)


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


def check_name(value: str, field_name: str = "--name") -> str:
    if not value.strip() or len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise _fail(field_name, f"must be 1 to {MAX_NAME} characters, without control characters")
    return value.strip()


def _project(row: Any) -> ProjectMoney:
    return ProjectMoney(
        id=row.id,
        name=row.name,
        currency=row.currency,
        amount_unit=row.amount_unit,
        usd_rate=None if row.usd_rate is None else Decimal(row.usd_rate),
        late_window_days=row.late_window_days,
    )


async def load(conn: AsyncConnection, project_id: str) -> ProjectMoney:
    row = (await conn.execute(select(projects).where(projects.c.id == project_id))).first()
    if row is None:
        raise NotFoundError(f"project not found: {project_id}")
    return _project(row)


async def late_window_days(conn: AsyncConnection, project_id: str) -> int:
    """The project's late-event window in days (one small read, for ingest)."""
    days = await conn.scalar(select(projects.c.late_window_days).where(projects.c.id == project_id))
    if days is None:
        raise NotFoundError(f"project not found: {project_id}")
    return int(days)


async def list_all(conn: AsyncConnection) -> list[ProjectMoney]:
    return [_project(r) for r in await conn.execute(select(projects).order_by(projects.c.created_at))]


async def _money_kept(conn: AsyncConnection, project_id: str) -> str | None:
    """What already holds amounts in the project's currency (which a currency change would misread)."""
    for table, what in (
        (events, "events"),
        (ledger_entries, "ledger entries"),
        (usage_records, "usage records"),
        (payment_configs, "a payment configuration"),
    ):
        found = await conn.scalar(select(table.c.project_id).where(table.c.project_id == project_id).limit(1))
        if found is not None:
            return what
    return None


async def update_project(
    conn: AsyncConnection,
    project_id: str,
    *,
    name: str | None = None,
    currency: str | None = None,
    usd_rate: str | None = None,
    amount_unit: str | None = None,
    late_window: int | None = None,
) -> ProjectMoney:
    """Validate and apply ``scrawn projects set`` (in the caller's write transaction)."""
    current = await load(conn, project_id)
    changes: dict[str, Any] = {}
    if late_window is not None:
        changes["late_window_days"] = check_late_window(late_window)
    if name is not None:
        changes["name"] = check_name(name)
    if amount_unit is not None:
        changes["amount_unit"] = check_amount_unit(amount_unit)
    new_currency = current.currency if currency is None else check_currency(currency)
    rate = None if usd_rate is None else check_rate(usd_rate)
    if new_currency != current.currency:
        kept = await _money_kept(conn, project_id)
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
        await conn.execute(update(projects).where(projects.c.id == project_id).values(**changes))
    return await load(conn, project_id)
