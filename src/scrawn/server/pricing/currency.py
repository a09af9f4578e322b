"""Pure currency rules (no I/O): the rate that turns the USD model price book into it (DESIGN §6).

The LLM price book and the project's model price overrides are US cents. A project in another currency
sets ``usd_rate``: how many of its *minor* units one US cent is worth (EUR at 0.92: 1 US cent = 0.92 euro
cents). A ``major`` project keeps its ledger in whole units, so a US cent becomes rate ÷ (minor units per
major unit) of them: the same scale a checkout uses to turn the ledger into the provider's minor units.
Tag prices, expressions and explicit amounts are already in the project's currency and are never converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal

from scrawn.errors import FailedPreconditionError

USD = "USD"
# ISO 4217 currencies without a minor unit (Stripe's list of zero-decimal currencies): one scale for converted
# prices and for checkouts.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())  # noqa: SIM905


def minor_per_major(currency: str) -> int:
    """Minor units in one unit of ``currency``: 100 for USD, 1 for JPY."""
    return 1 if currency in ZERO_DECIMAL else 100


# Wide enough that a rate (≤ 28 digits) times a price book amount is exact: the one rounding comes later.
EXACT = Context(prec=200)
SET_RATE_HINT = "set a USD conversion rate with `scrawn projects set --usd-rate`"


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
        return cents if not self.recorded else EXACT.multiply(cents, self.factor)


IDENTITY = Conversion(Decimal(1))
