"""``wallet.v1.WalletService``: live and test keys act in their mode; dash keys pick it with
``x-scrawn-mode``."""

from __future__ import annotations

from functools import partial
from typing import TypedDict

from scrawn._proto.wallet.v1 import wallet_pb2 as pb
from scrawn.money import format_amount
from scrawn.server.ledger.rules import period_text
from scrawn.server.ledger.types import Entry, Limits
from scrawn.server.rpc import Bound, Rpc, Scoped, wire
from scrawn.server.wallets import service as w
from scrawn.server.wallets.repository import Reservation


def _balance(view: w.BalanceView) -> pb.Balance:
    return pb.Balance(
        userId=view.user_id,
        balance=format_amount(view.balance),
        held=format_amount(view.held),
        available=format_amount(view.available),
    )


def _transaction(row: Entry) -> pb.Transaction:
    return wire(
        pb.Transaction,
        row,
        amount=format_amount(row.amount),
        description=row.description or "",
        eventId=row.event_id or "",
        reservationId=row.reservation_id or "",
        expiresAt=None if row.lot_expires_at is None else row.lot_expires_at // 1000,
    )


def _user_settings(s: w.UserSettings) -> pb.UserSettings:
    left = s.cap_remaining
    return pb.UserSettings(
        userId=s.user_id,
        spendCap="" if s.spend_cap is None else format_amount(s.spend_cap),
        lowBalanceThreshold="" if s.low_balance_threshold is None else format_amount(s.low_balance_threshold),
        period=period_text(s.period),
        spent=format_amount(s.spent),
        held=format_amount(s.held),
        capRemaining="" if left is None else format_amount(left),
    )


def _reservation(row: Reservation) -> pb.Reservation:
    return wire(
        pb.Reservation,
        row,
        amount=format_amount(row.amount),
        confirmedAmount=None if row.confirmed_amount is None else format_amount(row.confirmed_amount),
        description=row.description or "",
        transactionId=row.transaction_id or "",
    )


def _credit(request: pb.CreditRequest) -> Bound[w.Posting]:
    return partial(
        w.credit,
        kind=w.check_kind(request.kind),
        amount=w.check_amount("amount", request.amount),
        expires_at=w.check_expires_at(request.expiresAt if request.HasField("expiresAt") else None),
        **_entry_fields(request),
    )


def _debit(request: pb.DebitRequest) -> Bound[w.Posting]:
    return partial(w.debit, amount=w.check_amount("amount", request.amount), **_entry_fields(request))


class _EntryFields(TypedDict):
    user_id: str
    key: str
    description: str | None


def _entry_fields(request: pb.CreditRequest | pb.DebitRequest) -> _EntryFields:
    """The user, idempotency key and description of a credit or debit, checked."""
    return {
        "user_id": w.check_user(request.userId),
        "key": w.check_key(request.idempotencyKey),
        "description": w.check_description(request.description),
    }


def _create_reservation(request: pb.CreateReservationRequest) -> Bound[Reservation]:
    return partial(
        w.create_reservation,
        user_id=w.check_user(request.userId),
        amount=w.check_amount("amount", request.amount),
        key=w.check_key(request.idempotencyKey),
        ttl=w.check_ttl(request.ttlSeconds),
        description=w.check_description(request.description),
    )


def _update_settings(request: pb.UpdateUserSettingsRequest) -> Bound[w.UserSettings]:
    user = w.check_user(request.userId)
    changes: Limits = {}
    if request.HasField("spendCap"):
        changes["spend_cap"] = w.check_setting("spendCap", request.spendCap, allow_negative=False)
    if request.HasField("lowBalanceThreshold"):
        changes["low_balance_threshold"] = w.check_setting(
            "lowBalanceThreshold", request.lowBalanceThreshold, allow_negative=True
        )
    return partial(w.update_settings, user_id=user, **changes)


def _transaction_response(posting: w.Posting) -> pb.TransactionResponse:
    row, view, duplicate = posting
    return pb.TransactionResponse(transaction=_transaction(row), balance=_balance(view), duplicate=duplicate)


def _confirmed(done: tuple[Reservation, str, w.BalanceView]) -> pb.ConfirmReservationResponse:
    row, transaction_id, view = done
    return pb.ConfirmReservationResponse(
        reservation=_reservation(row), transactionId=transaction_id, balance=_balance(view)
    )


def _reservations(page: tuple[list[Reservation], str]) -> pb.ListReservationsResponse:
    rows, token = page
    return pb.ListReservationsResponse(reservations=[_reservation(r) for r in rows], nextPageToken=token)


def _transactions(page: tuple[list[Entry], str]) -> pb.ListTransactionsResponse:
    rows, token = page
    return pb.ListTransactionsResponse(transactions=[_transaction(r) for r in rows], nextPageToken=token)


class WalletRpc(Rpc):
    """Each call: the caller, its request checked and bound to the wallet service, in the caller's project
    and mode, the answer (``Scoped``)."""

    get_balance = Scoped("read", lambda r: partial(w.read_balance, user_id=w.check_user(r.userId)), _balance)
    credit = Scoped("write", _credit, _transaction_response)
    debit = Scoped("write", _debit, _transaction_response)
    create_reservation = Scoped("write", _create_reservation, _reservation)
    confirm_reservation = Scoped(
        "write",
        lambda r: partial(
            w.confirm_reservation,
            reservation_id=r.reservationId,
            actual=w.check_amount("actualAmount", r.actualAmount, allow_zero=True),
        ),
        _confirmed,
    )
    cancel_reservation = Scoped(
        "write", lambda r: partial(w.cancel_reservation, reservation_id=r.reservationId), _reservation
    )
    extend_reservation = Scoped(
        "write",
        lambda r: partial(
            w.extend_reservation, reservation_id=r.reservationId, ttl=w.check_ttl(r.ttlSeconds, default=None)
        ),
        _reservation,
    )
    list_reservations = Scoped(
        "read",
        lambda r: partial(
            w.list_reservations,
            user_id=r.userId,
            active_only=r.activeOnly,
            limit=r.limit,
            token=r.pageToken,
        ),
        _reservations,
    )
    list_transactions = Scoped(
        "read",
        lambda r: partial(w.list_transactions, user_id=r.userId, limit=r.limit, token=r.pageToken),
        _transactions,
    )
    get_user_settings = Scoped(
        "read", lambda r: partial(w.get_settings, user_id=w.check_user(r.userId)), _user_settings
    )
    update_user_settings = Scoped("write", _update_settings, _user_settings)
