"""Money as the portal shows it: in the project's currency (major units), exact — a balance of 1234.5 US
cents reads ``USD 12.345``, never a float-rounded ``12.35``."""

from __future__ import annotations

from decimal import Decimal

from scrawn.money import format_amount
from scrawn.server.projects.types import ProjectMoney


def to_major(amount: Decimal, project: ProjectMoney) -> Decimal:
    """A project amount (in its amount unit) in whole currency units, exactly (the divisor is 1 or 100)."""
    return amount if project.amount_unit == "major" else amount / project.minor_per_major()


def display(amount: Decimal, project: ProjectMoney) -> str:
    """``USD 12.50``, ``USD -0.000001``, ``JPY 1,200``: the currency's decimals at least, every digit kept."""
    major = to_major(amount, project)
    places = 0 if project.minor_per_major() == 1 else 2
    digits = format_amount(major)
    shown = max(places, len(digits.partition(".")[2]))
    return f"{project.currency} {major:,.{shown}f}"


def from_major(amount: Decimal, project: ProjectMoney) -> Decimal:
    """Whole currency units (what a customer types) in the project's amount unit."""
    return amount if project.amount_unit == "major" else amount * project.minor_per_major()
