"""``wallet.v1.WalletService``: live and test keys act in their mode; dash keys pick it with
``x-scrawn-mode``."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.wallet.v1 import wallet_pb2 as pb
from scrawn.money import format_amount
from scrawn.server.ledger.rules import period_text
from scrawn.server.ledger.types import Entry
from scrawn.server.rpc import Rpc, handler
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
    tx = pb.Transaction(
        id=row.id,
        userId=row.user_id,
        kind=row.kind,
        amount=format_amount(row.amount),
        description=row.description or "",
        eventId=row.event_id or "",
        reservationId=row.reservation_id or "",
        createdAt=row.created_at,
    )
    if row.lot_expires_at is not None:
        tx.expiresAt = row.lot_expires_at // 1000
    return tx


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
    res = pb.Reservation(
        id=row.id,
        userId=row.user_id,
        amount=format_amount(row.amount),
        status=row.status,
        expiresAt=row.expires_at,
        createdAt=row.created_at,
        description=row.description or "",
        transactionId=row.transaction_id or "",
    )
    if row.confirmed_amount is not None:
        res.confirmedAmount = format_amount(row.confirmed_amount)
    return res


def _entry_fields(request: pb.CreditRequest | pb.DebitRequest) -> tuple[str, str, str | None]:
    """The user, idempotency key and description of a credit or debit, checked."""
    return (
        w.check_user(request.userId),
        w.check_key(request.idempotencyKey),
        w.check_description(request.description),
    )


def _transaction_response(posting: w.Posting) -> pb.TransactionResponse:
    row, view, duplicate = posting
    return pb.TransactionResponse(transaction=_transaction(row), balance=_balance(view), duplicate=duplicate)


class WalletRpc(Rpc):
    @handler
    async def get_balance(self, request: pb.GetBalanceRequest, ctx: RequestContext[Any, Any]) -> pb.Balance:
        caller = await self._caller(ctx)
        user = w.check_user(request.userId)
        return _balance(await self._scoped("read", caller, w.read_balance, user))

    @handler
    async def credit(
        self, request: pb.CreditRequest, ctx: RequestContext[Any, Any]
    ) -> pb.TransactionResponse:
        caller = await self._caller(ctx)
        kind = w.check_kind(request.kind)
        amount = w.check_amount("amount", request.amount)
        expires_at = w.check_expires_at(request.expiresAt if request.HasField("expiresAt") else None)
        user, key, text = _entry_fields(request)
        posting = await self._scoped(
            "write",
            caller,
            w.credit,
            user_id=user,
            amount=amount,
            kind=kind,
            key=key,
            description=text,
            expires_at=expires_at,
        )
        return _transaction_response(posting)

    @handler
    async def debit(self, request: pb.DebitRequest, ctx: RequestContext[Any, Any]) -> pb.TransactionResponse:
        caller = await self._caller(ctx)
        amount = w.check_amount("amount", request.amount)
        user, key, text = _entry_fields(request)
        posting = await self._scoped(
            "write", caller, w.debit, user_id=user, amount=amount, key=key, description=text
        )
        return _transaction_response(posting)

    @handler
    async def create_reservation(
        self, request: pb.CreateReservationRequest, ctx: RequestContext[Any, Any]
    ) -> pb.Reservation:
        caller = await self._caller(ctx)
        user, amount = w.check_user(request.userId), w.check_amount("amount", request.amount)
        key, ttl = w.check_key(request.idempotencyKey), w.check_ttl(request.ttlSeconds)
        text = w.check_description(request.description)
        row = await self._scoped(
            "write",
            caller,
            w.create_reservation,
            user_id=user,
            amount=amount,
            ttl=ttl,
            key=key,
            description=text,
        )
        return _reservation(row)

    @handler
    async def confirm_reservation(
        self, request: pb.ConfirmReservationRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ConfirmReservationResponse:
        caller = await self._caller(ctx)
        actual = w.check_amount("actualAmount", request.actualAmount, allow_zero=True)
        row, transaction_id, view = await self._scoped(
            "write", caller, w.confirm_reservation, request.reservationId, actual
        )
        return pb.ConfirmReservationResponse(
            reservation=_reservation(row), transactionId=transaction_id, balance=_balance(view)
        )

    @handler
    async def cancel_reservation(
        self, request: pb.ReservationIdRequest, ctx: RequestContext[Any, Any]
    ) -> pb.Reservation:
        caller = await self._caller(ctx)
        return _reservation(await self._scoped("write", caller, w.cancel_reservation, request.reservationId))

    @handler
    async def extend_reservation(
        self, request: pb.ExtendReservationRequest, ctx: RequestContext[Any, Any]
    ) -> pb.Reservation:
        caller = await self._caller(ctx)
        ttl = w.check_ttl(request.ttlSeconds, default=None)
        return _reservation(
            await self._scoped("write", caller, w.extend_reservation, request.reservationId, ttl)
        )

    @handler
    async def list_reservations(
        self, request: pb.ListReservationsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListReservationsResponse:
        caller = await self._caller(ctx)
        rows, token = await self._scoped(
            "read",
            caller,
            w.list_reservations,
            request.userId,
            request.activeOnly,
            request.limit,
            request.pageToken,
        )
        return pb.ListReservationsResponse(reservations=[_reservation(r) for r in rows], nextPageToken=token)

    @handler
    async def list_transactions(
        self, request: pb.ListTransactionsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListTransactionsResponse:
        caller = await self._caller(ctx)
        rows, token = await self._scoped(
            "read", caller, w.list_transactions, request.userId, request.limit, request.pageToken
        )
        return pb.ListTransactionsResponse(transactions=[_transaction(r) for r in rows], nextPageToken=token)

    @handler
    async def get_user_settings(
        self, request: pb.GetUserSettingsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.UserSettings:
        caller = await self._caller(ctx)
        user = w.check_user(request.userId)
        return _user_settings(await self._scoped("read", caller, w.get_settings, user))

    @handler
    async def update_user_settings(
        self, request: pb.UpdateUserSettingsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.UserSettings:
        caller = await self._caller(ctx)
        user = w.check_user(request.userId)
        changes: dict[str, Any] = {}
        if request.HasField("spendCap"):
            changes["spend_cap"] = w.check_setting("spendCap", request.spendCap, allow_negative=False)
        if request.HasField("lowBalanceThreshold"):
            changes["low_balance_threshold"] = w.check_setting(
                "lowBalanceThreshold", request.lowBalanceThreshold, allow_negative=True
            )
        return _user_settings(await self._scoped("write", caller, w.update_settings, user, **changes))
