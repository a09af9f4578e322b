"""The sans-I/O half of wallets and reservations (``wallet.v1.WalletService``): validation of every input
(naming the argument, before any network call), the request messages, and the result types read from the
responses. Both clients send the :class:`~scrawn._core.Rpc` values built here with their own retries.

Amounts are minor units (cents). They go in as ``int``, ``Decimal``, a decimal ``str`` or a ``float`` (read
through its shortest ``repr``) and come back as ``Decimal``; NaN, infinity and negative numbers are refused.
Times come back as timezone-aware UTC ``datetime`` values.
"""

from __future__ import annotations

import enum
import operator
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, SupportsIndex, TypeVar, cast

from scrawn._core import check_user_id, key_or_new
from scrawn._proto.wallet.v1 import wallet_pb2 as pb
from scrawn._retry import Rpc
from scrawn._wallet_results import (
    EPOCH,
    Balance,
    ConfirmedData,
    ReservationData,
    TransactionPage,
    TransactionResult,
    UserSettings,
    balance_of,
    reservation_of,
    settings_of,
    transaction_of,
)
from scrawn.errors import ValidationError
from scrawn.money import MAX_MICROS, MICROS_PER_UNIT
from scrawn.pricing import Number, format_number, parse_number

R = TypeVar("R")
SERVICE: Final = "/wallet.v1.WalletService/"
CONTEXT: Final = "Wallet validation failed"
CREDIT_KINDS: Final = ("grant", "top_up", "adjustment")
MAX_DESCRIPTION: Final = 255
DEFAULT_TTL, MAX_TTL = 300, 86_400
MAX_PAGE: Final = 500
MAX_PAGE_TOKEN: Final = 1024
MAX_EXPIRES_AT: Final = 253_402_300_799  # 9999-12-31T23:59:59Z, Unix seconds
MAX_SETTING: Final = Decimal(MAX_MICROS) / MICROS_PER_UNIT

CreditKind = Literal["grant", "top_up", "adjustment"]


def fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


# ------------------------------------------------------------------------------------------- inputs


def check_amount(field: str, value: object, *, allow_zero: bool = False, context: str = CONTEXT) -> str:
    """An amount of minor units as the decimal text the wire carries: > 0 (≥ 0 with ``allow_zero``), at
    least one micro-unit, and small enough for the ledger."""
    try:
        number = parse_number(field, value)
    except ValidationError as e:
        raise ValidationError(field, e.problem, context=context) from None
    if number.is_zero():
        if allow_zero:
            return "0"
        raise ValidationError(field, "must be greater than zero", context=context)
    micros = number * MICROS_PER_UNIT
    if micros > MAX_MICROS:
        raise ValidationError(field, "is too large", context=context)
    if micros < Decimal("0.5"):
        raise ValidationError(field, "is smaller than one micro-unit (0.000001)", context=context)
    return format_number(number)


def check_user(value: object, field: str = "user_id") -> str:
    return check_user_id(value, field, CONTEXT)


def check_key(value: object) -> str:
    """The caller's idempotency key, or a new UUID for this logical call (reused by every retry)."""
    return key_or_new(value, CONTEXT)


def check_description(value: object, field: str = "description", context: str = CONTEXT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}", context=context)
    if len(value) > MAX_DESCRIPTION or "\x00" in value:
        raise ValidationError(
            field, f"must be at most {MAX_DESCRIPTION} characters, without NUL", context=context
        )
    return value


def check_kind(value: object) -> str:
    if value not in CREDIT_KINDS or not isinstance(value, str):
        raise fail("kind", f"must be one of {', '.join(CREDIT_KINDS)}")
    return value


def check_int(field: str, value: object, low: int, high: int, context: str = CONTEXT) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, "must be an int, not a bool", context=context)
    try:
        number = operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise ValidationError(field, f"must be an int, not {type(value).__name__}", context=context) from None
    if not low <= number <= high:
        raise ValidationError(field, f"must be from {low} to {high}", context=context)
    return int(number)


def check_ttl(value: object, field: str = "ttl_seconds") -> int:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds != int(seconds):
            raise fail(field, "must be a whole number of seconds")
        value = int(seconds)
    return check_int(field, value, 1, MAX_TTL)


def check_expires_at(value: object) -> int | None:
    """A credit's expiry: an aware ``datetime`` or a ``timedelta`` from now; Unix seconds on the wire
    (rounded up: never earlier than asked)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = datetime.now(UTC) + value
    if not isinstance(value, datetime):
        raise fail(
            "expires_at",
            f"must be a timezone-aware datetime or a timedelta from now, not {type(value).__name__}",
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise fail("expires_at", "must be timezone-aware (e.g. datetime.now(timezone.utc) + ...)")
    try:
        seconds = -(-(value - EPOCH) // timedelta(seconds=1))
    except OverflowError:
        raise fail("expires_at", "is out of range") from None
    if seconds <= (datetime.now(UTC) - EPOCH) // timedelta(seconds=1):
        raise fail("expires_at", "must be in the future")
    if seconds > MAX_EXPIRES_AT:
        raise fail("expires_at", "must be at most 9999-12-31")
    return seconds


def check_uuid(
    value: object, field: str, what: str, error: Callable[[str, str], ValidationError] = fail
) -> str:
    """A UUID, or its text, as canonical text; ``what`` names the id in the error (built by ``error``:
    each module's own validation context)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise error(field, f"must be {what} (a UUID string), not {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise error(field, "must be a UUID") from None


def check_reservation_id(value: object, field: str = "reservation_id") -> str:
    ident = getattr(value, "id", None)
    if not isinstance(value, str | uuid.UUID) and isinstance(ident, str):
        value = ident  # a Reservation object
    return check_uuid(value, field, "a reservation id")


def check_limit(value: object, high: int = MAX_PAGE, context: str = CONTEXT) -> int:
    return 0 if value is None else check_int("limit", value, 1, high, context)


def check_page_token(value: object, context: str = CONTEXT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(
            "page_token",
            f"must be a string from next_page_token, not {type(value).__name__}",
            context=context,
        )
    if len(value) > MAX_PAGE_TOKEN or "\x00" in value:
        raise ValidationError("page_token", "is not a token the server gave out", context=context)
    return value


def check_setting(field: str, value: object, *, allow_negative: bool) -> str:
    """A spend cap or low-balance threshold: a number, or ``""`` to remove it."""
    if value == "":
        return ""
    negative = False
    if allow_negative and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        negative = value < 0
        if negative:
            value = -value
    elif allow_negative and isinstance(value, str) and value.strip().startswith("-"):
        negative, value = True, value.strip()[1:]
    try:
        number = parse_number(field, value)
    except ValidationError as e:
        raise fail(field, e.problem) from None
    if number > MAX_SETTING:
        raise fail(field, "is too large")
    text = format_number(number)
    return f"-{text}" if negative and text != "0" else text


# ---------------------------------------- calls (client.wallet's methods: scrawn._wallet_client.Wallet)


def _user_call(
    name: str,
    method: str,
    request: Any,
    response_type: Any,
    unpack: Callable[[Any], R],
    user: str,
    key: str = "",
) -> Rpc[R]:
    """A call of ``WalletService/{method}`` on one user's wallet, ``wallet.{name}`` to ``on_error``."""
    return Rpc(f"wallet.{name}", SERVICE + method, request, response_type, unpack, key, user)


def _transaction(name: str, method: str, request: Any, key: str, user: str) -> Rpc[TransactionResult]:
    """``Credit`` or ``Debit``: the ledger entry made (or found, for a key already used), the balance."""

    def unpack(response: pb.TransactionResponse) -> TransactionResult:
        return TransactionResult(
            transaction=transaction_of(response.transaction),
            balance=balance_of(response.balance),
            duplicate=response.duplicate,
            idempotency_key=key,
        )

    return _user_call(name, method, request, pb.TransactionResponse, unpack, user, key)


def balance(user_id: str) -> Rpc[Balance]:
    """The user's ``balance``, ``held`` and ``available`` (an unknown user has zeros)."""
    user = check_user(user_id)
    return _user_call(
        "balance", "GetBalance", pb.GetBalanceRequest(userId=user), pb.Balance, balance_of, user
    )


def credit(
    user_id: str,
    amount: Number,
    *,
    kind: CreditKind = "grant",
    idempotency_key: str | None = None,
    description: str | None = None,
    expires_at: datetime | timedelta | None = None,
) -> Rpc[TransactionResult]:
    """Add credit: ``kind`` is ``grant`` (default), ``top_up`` or ``adjustment``. ``expires_at`` (an aware
    ``datetime`` or a ``timedelta`` from now) makes what is left of it expire then. One idempotency key
    per call (a new UUID unless given), reused by every retry: the credit is applied once."""
    user = check_user(user_id)
    text = check_amount("amount", amount)
    request = pb.CreditRequest(
        userId=user,
        amount=text,
        kind=check_kind(kind),
        idempotencyKey=(key := check_key(idempotency_key)),
        description=check_description(description),
    )
    expiry = check_expires_at(expires_at)
    if expiry is not None:
        request.expiresAt = expiry
    return _transaction("credit", "Credit", request, key, user)


def debit(
    user_id: str, amount: Number, *, idempotency_key: str | None = None, description: str | None = None
) -> Rpc[TransactionResult]:
    """Take ``amount`` atomically, never below zero available: otherwise raises
    :class:`~scrawn.errors.InsufficientCreditsError` (``current_balance``, ``available``,
    ``requested_amount``). Applied once per idempotency key, however often it is retried."""
    user = check_user(user_id)
    request = pb.DebitRequest(
        userId=user,
        amount=check_amount("amount", amount),
        idempotencyKey=(key := check_key(idempotency_key)),
        description=check_description(description),
    )
    return _transaction("debit", "Debit", request, key, user)


def transactions(
    user_id: str, *, limit: int | None = None, page_token: str | None = None
) -> Rpc[TransactionPage]:
    """The user's ledger entries, newest first; ``limit`` 1–500 (default 50)."""
    user = check_user(user_id)
    request = pb.ListTransactionsRequest(
        userId=user, limit=check_limit(limit), pageToken=check_page_token(page_token)
    )

    def unpack(response: pb.ListTransactionsResponse) -> TransactionPage:
        return TransactionPage(
            [transaction_of(t) for t in response.transactions], response.nextPageToken or None
        )

    return _user_call("transactions", "ListTransactions", request, pb.ListTransactionsResponse, unpack, user)


def settings(user_id: str) -> Rpc[UserSettings]:
    """The user's spend cap, low-balance threshold, and this month's spend."""
    user = check_user(user_id)
    request = pb.GetUserSettingsRequest(userId=user)
    return _user_call("settings", "GetUserSettings", request, pb.UserSettings, settings_of, user)


class Unchanged(enum.Enum):
    """The default of ``update_settings``' arguments: leave that setting as it is."""

    UNCHANGED = "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED


def update_settings(
    user_id: str,
    *,
    spend_cap: Number | Unchanged | None = UNCHANGED,
    low_balance_threshold: Number | Unchanged | None = UNCHANGED,
) -> Rpc[UserSettings]:
    """Set what is given (``None`` removes it) and leave the rest."""
    user = check_user(user_id)
    request = pb.UpdateUserSettingsRequest(userId=user)
    if spend_cap is not UNCHANGED:
        request.spendCap = (
            "" if spend_cap is None else check_setting("spend_cap", spend_cap, allow_negative=False)
        )
    if low_balance_threshold is not UNCHANGED:
        request.lowBalanceThreshold = (
            ""
            if low_balance_threshold is None
            else check_setting("low_balance_threshold", low_balance_threshold, allow_negative=True)
        )
    return _user_call("update_settings", "UpdateUserSettings", request, pb.UserSettings, settings_of, user)


def create_reservation(
    user_id: object, amount: object, ttl_seconds: object, idempotency_key: object, description: object
) -> Rpc[tuple[ReservationData, str]]:
    user = check_user(user_id)
    request = pb.CreateReservationRequest(
        userId=user,
        amount=check_amount("amount", amount),
        ttlSeconds=check_ttl(ttl_seconds),
        idempotencyKey=(key := check_key(idempotency_key)),
        description=check_description(description),
    )
    return Rpc(
        "create_reservation",
        SERVICE + "CreateReservation",
        request,
        pb.Reservation,
        lambda response: (reservation_of(response), key),
        key,
        user,
    )


def confirm_reservation(reservation_id: object, actual_amount: object) -> Rpc[ConfirmedData]:
    request = pb.ConfirmReservationRequest(
        reservationId=check_reservation_id(reservation_id),
        actualAmount=check_amount("actual_amount", actual_amount, allow_zero=True),
    )

    def unpack(response: pb.ConfirmReservationResponse) -> ConfirmedData:
        return ConfirmedData(
            reservation_of(response.reservation), response.transactionId, balance_of(response.balance)
        )

    return Rpc(
        "confirm_reservation", SERVICE + "ConfirmReservation", request, pb.ConfirmReservationResponse, unpack
    )


def cancel_reservation(reservation_id: object) -> Rpc[ReservationData]:
    request = pb.ReservationIdRequest(reservationId=check_reservation_id(reservation_id))
    return Rpc("cancel_reservation", SERVICE + "CancelReservation", request, pb.Reservation, reservation_of)


def extend_reservation(reservation_id: object, ttl_seconds: object) -> Rpc[ReservationData]:
    request = pb.ExtendReservationRequest(
        reservationId=check_reservation_id(reservation_id), ttlSeconds=check_ttl(ttl_seconds)
    )
    return Rpc("extend_reservation", SERVICE + "ExtendReservation", request, pb.Reservation, reservation_of)


def list_reservations(
    user_id: object, active_only: object, limit: object, page_token: object
) -> Rpc[tuple[list[ReservationData], str | None]]:
    user = "" if user_id is None else check_user(user_id)
    if not isinstance(active_only, bool):
        raise fail("active_only", "must be a bool")
    request = pb.ListReservationsRequest(
        userId=user, activeOnly=active_only, limit=check_limit(limit), pageToken=check_page_token(page_token)
    )

    def unpack(response: pb.ListReservationsResponse) -> tuple[list[ReservationData], str | None]:
        return [reservation_of(r) for r in response.reservations], response.nextPageToken or None

    return Rpc(
        "list_reservations",
        SERVICE + "ListReservations",
        request,
        pb.ListReservationsResponse,
        unpack,
        user_id=user or None,
    )
