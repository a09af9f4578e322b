"""What the wallet calls answer — :class:`Balance`, :class:`TransactionResult`, :class:`TransactionPage`,
:class:`UserSettings`, reservations — and the wire values they are read from (amounts as decimal strings,
times as Unix seconds or milliseconds)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, get_type_hints

from scrawn._proto.wallet.v1 import wallet_pb2 as pb
from scrawn.errors import InternalError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
E = TypeVar("E")
R = TypeVar("R", bound="DataclassInstance")


class Listing(Generic[E]):
    """A page (or list) of results: iterating it, and ``len()``, are over its items (``_items()``)."""

    __slots__ = ()

    def _items(self) -> list[E]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[E]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


# ---------------------------------------------------------------------------------------- wire values


def amount_of(text: str) -> Decimal:
    """A decimal string from the wire (``""`` is 0)."""
    if not text:
        return Decimal(0)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InternalError(f"Malformed amount from the server: {text[:40]!r}") from None


def optional_amount(text: str) -> Decimal | None:
    return amount_of(text) if text else None


def time_of_ms(ms: int) -> datetime | None:
    """Unix milliseconds from the wire as an aware UTC datetime (0: not set). Exact: no float on the way."""
    if not ms:
        return None
    try:
        return EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None


def time_of_seconds(seconds: int) -> datetime | None:
    try:
        return EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def to_ms(value: datetime) -> int:
    """An aware datetime as Unix milliseconds (floored), exactly."""
    return (value - EPOCH) // timedelta(milliseconds=1)


def _text_or_none(text: str) -> str | None:
    return text or None


# how a result field of each type is read from its wire value; any other type is taken as it is
_READERS: Final[dict[object, Callable[[Any], Any]]] = {
    Decimal: amount_of,
    Decimal | None: optional_amount,
    datetime | None: time_of_ms,
    str | None: _text_or_none,
}


@functools.cache
def _plan(cls: type[DataclassInstance]) -> tuple[tuple[str, str, Callable[[Any], Any] | None], ...]:
    """Each field of the result class: its name, its wire name (camelCase) and how its value is read."""
    types = get_type_hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        first, *rest = field.name.split("_")
        plan.append((field.name, first + "".join(w.title() for w in rest), _READERS.get(types[field.name])))
    return tuple(plan)


def from_wire(cls: type[R], message: Any, **given: Any) -> R:
    """The result dataclass ``cls`` read from its wire ``message``: each field from the message field of the
    same name in camelCase — a ``Decimal`` from a decimal string (``""`` is 0, or ``None`` for ``Decimal |
    None``), a ``datetime | None`` from Unix milliseconds, a ``str | None`` with ``""`` as ``None``, anything
    else as it is. The fields in ``given`` are taken as given instead."""
    values = dict(given)
    for name, wire, read in _plan(cls):
        if name not in given:
            value = getattr(message, wire)
            values[name] = value if read is None else read(value)
    return cls(**values)


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's wallet: ``balance`` (the sum of their ledger entries; negative means owed), ``held`` (active
    reservations) and ``available = balance − held`` — what a debit or a new hold may take."""

    user_id: str
    balance: Decimal
    held: Decimal
    available: Decimal


@dataclass(frozen=True, slots=True)
class Transaction:
    """One ledger entry. ``amount`` is signed (debits are negative). ``kind``: ``usage``, ``grant``,
    ``top_up``, ``adjustment``, ``debit``, ``capture``, ``expiry``, ``payment``, ``refund`` or ``void`` (a
    voided event's reversal)."""

    id: str
    user_id: str
    kind: str
    amount: Decimal
    description: str | None
    event_id: str | None
    reservation_id: str | None
    created_at: datetime | None
    expires_at: datetime | None = None  # a credit with an expiry


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """What ``wallet.credit`` / ``wallet.debit`` did: the ledger entry, the wallet after it, and whether the
    idempotency key had already been applied (then ``transaction`` is the original and nothing moved)."""

    transaction: Transaction
    balance: Balance
    duplicate: bool
    idempotency_key: str

    @property
    def id(self) -> str:
        return self.transaction.id


@dataclass(frozen=True, slots=True)
class TransactionPage(Listing[Transaction]):
    """One page of a user's ledger entries, newest first. Iterable; ``next_page_token`` is ``None`` on the
    last page."""

    transactions: list[Transaction]
    next_page_token: str | None

    def _items(self) -> list[Transaction]:
        return self.transactions


@dataclass(frozen=True, slots=True)
class UserSettings:
    """A user's spend controls: ``spend_cap`` per calendar month in UTC (``None``: no cap), the
    ``low_balance_threshold`` (``None``: none), and this ``period``'s ``spent``, ``held`` and
    ``cap_remaining``."""

    user_id: str
    spend_cap: Decimal | None
    low_balance_threshold: Decimal | None
    period: str
    spent: Decimal
    held: Decimal
    cap_remaining: Decimal | None


@dataclass(frozen=True, slots=True)
class ReservationData:
    """A reservation as the server answered it (the bound :class:`~scrawn.Reservation` is built from it)."""

    id: str
    user_id: str
    amount: Decimal
    status: str
    expires_at: datetime | None
    created_at: datetime | None
    confirmed_amount: Decimal | None
    transaction_id: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class ConfirmedData:
    reservation: ReservationData
    transaction_id: str
    balance: Balance


def balance_of(message: pb.Balance) -> Balance:
    return from_wire(Balance, message)


def transaction_of(message: pb.Transaction) -> Transaction:
    # a credit's expiry is Unix seconds, and only there when it has one
    expires_at = time_of_seconds(message.expiresAt) if message.HasField("expiresAt") else None
    return from_wire(Transaction, message, expires_at=expires_at)


def reservation_of(message: pb.Reservation) -> ReservationData:
    return from_wire(ReservationData, message)


def settings_of(message: pb.UserSettings) -> UserSettings:
    return from_wire(UserSettings, message)
