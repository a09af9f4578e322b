"""A project's settings as every domain reads them: currency, amount unit, USD rate, late-event window."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from scrawn.money import format_amount
from scrawn.server.pricing.currency import EXACT, IDENTITY, USD, Conversion, NoUsdRate, minor_per_major

# Events reported more than this many days ago are refused (docs/events.md#late-events).
LATE_WINDOW_DEFAULT, LATE_WINDOW_MIN, LATE_WINDOW_MAX = 35, 1, 3650


@dataclass(frozen=True)
class ProjectMoney:
    id: str
    name: str
    currency: str
    amount_unit: str
    usd_rate: Decimal | None  # None: not set (1 for USD)
    late_window_days: int = LATE_WINDOW_DEFAULT
    time_zone: str = "UTC"  # IANA name: the zone the dashboard's and portal's charts bucket by

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
        factor = EXACT.divide(rate, Decimal(self.minor_per_major()))  # exact: a power of ten
        recorded = {"currency": self.currency, "usdRate": format_amount(rate), "amountUnit": "major"}
        return Conversion(factor, recorded)
