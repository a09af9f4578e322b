"""Exact money: amounts are ``Decimal`` minor units (cents); storage is integer micro-units.

The one rounding rule (DESIGN §4): arithmetic is exact until an amount is written, then it is
rounded once to the micro-unit (10⁻⁶ of a minor unit), half-even.
"""

from __future__ import annotations

import math
import struct
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

MICROS_PER_UNIT = 1_000_000
MICRO = Decimal("0.000001")
# Micro-unit amounts are stored as signed 64-bit integers.
MAX_MICROS = 2**63 - 1
_WIDE = Context(prec=1000)  # wide enough that normalising never rounds


class MoneyError(ValueError):
    """An amount that cannot be money: not a number, infinite, negative where it may not be, too large."""


def to_micros(amount: Decimal) -> int:
    """Round ``amount`` (minor units) to the micro-unit, half-even, as an integer count of micro-units."""
    if not amount.is_finite():
        raise MoneyError("must be a finite number")
    micros = int((amount * MICROS_PER_UNIT).to_integral_value(rounding=ROUND_HALF_EVEN))
    if abs(micros) > MAX_MICROS:
        raise MoneyError("is too large")
    return micros


def from_micros(micros: int) -> Decimal:
    """The exact minor-unit amount held by ``micros`` micro-units, normalised without exponent."""
    return _plain(Decimal(micros).scaleb(-6))


def whole_units_half_even(micros: int) -> int:
    """Whole minor units, rounded half-even (for int64 wire fields that carry whole cents)."""
    return int(Decimal(micros).scaleb(-6).to_integral_value(rounding=ROUND_HALF_EVEN))


def whole_units_up(micros: int) -> int:
    """Whole minor units rounded up (towards +inf): what a checkout charges for an outstanding amount."""
    return int(Decimal(micros).scaleb(-6).to_integral_value(rounding=ROUND_CEILING))


def format_amount(amount: Decimal) -> str:
    """A decimal string with no exponent and no trailing zeros (``"12.5"``, ``"0"``)."""
    return format(_plain(amount), "f")


def _plain(amount: Decimal) -> Decimal:
    if amount == 0:
        return Decimal(0)
    normal = amount.normalize(_WIDE)
    # normalize() may produce an exponent form such as 1E+2; quantize back to an integer then.
    return normal.quantize(Decimal(1), context=_WIDE) if normal.as_tuple().exponent > 0 else normal  # type: ignore[operator]


def parse_decimal(text: str) -> Decimal:
    """Parse a decimal string such as ``"12.345"``; refuses NaN, infinity and exponent-free garbage."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise MoneyError(f"{text[:40]!r} is not a decimal number") from None
    if not value.is_finite():
        raise MoneyError("must be a finite number")
    return value


def float32_bits_to_decimal(bits: int) -> Decimal:
    """The shortest decimal that round-trips a 32-bit float (legacy clients send amounts as float32).

    0.1f is 0.100000001490116…; the shortest text that reads back as the same float32 is "0.1".
    """
    raw = struct.pack("<I", bits & 0xFFFFFFFF)
    (value,) = struct.unpack("<f", raw)
    if not math.isfinite(value):
        raise MoneyError("must be a finite number")
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if struct.pack("<f", float(text)) == raw:
                return Decimal(text)
        except OverflowError:  # near the float32 maximum a short text can round past it
            continue
    return Decimal(repr(value))  # unreachable: 9 significant digits always round-trip a float32
