"""The I/O half of wallets and reservations: ``client.wallet`` (:class:`Wallet`, :class:`AsyncWallet`) and
the reservation objects (:class:`Reservation`, :class:`AsyncReservation`), which are context managers:

    with client.create_reservation("user_42", 500) as hold:   # holds 500 cents (or raises
        answer = run_llm_call()                                 #  InsufficientCreditsError)
        hold.set_actual(cost_of(answer))                        # confirmed with this when the block ends
    # an exception in the block cancels the hold instead

Every call goes through the client's own retries (``Rpc`` values from :mod:`scrawn._wallet`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from scrawn import _wallet
from scrawn._closing import AsyncSettled, ExcType, Settled
from scrawn._methods import Asyncio, Blocking, Steps, call, run, run_async
from scrawn._retry import Rpc
from scrawn._wallet_results import (
    Balance,
    ConfirmedData,
    Listing,
    ReservationData,
)
from scrawn.errors import ValidationError
from scrawn.pricing import Number

if TYPE_CHECKING:
    from scrawn._client_base import AsyncClient, SyncClient

log = logging.getLogger("scrawn.wallet")

R = TypeVar("R", bound="_ReservationState")
T = TypeVar("T")
UNCHANGED: Final = _wallet.UNCHANGED
_NOT_CONFIRMED = "Reservation not confirmed"


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Confirmation(Generic[R]):
    """A confirmed reservation: the ledger entry that took the actual amount (``transaction_id``, what
    ``record_usage(transaction_id=...)`` needs) and the wallet after it."""

    reservation: R
    transaction_id: str
    balance: Balance

    @property
    def amount(self) -> Decimal | None:
        """The amount taken (the reservation's ``confirmed_amount``)."""
        return self.reservation.confirmed_amount


@dataclass(frozen=True, slots=True)
class ReservationPage(Listing[R]):
    """A page of reservations, newest first. Iterable; ``next_page_token`` is ``None`` on the last page."""

    reservations: list[R]
    next_page_token: str | None

    def _items(self) -> list[R]:
        return self.reservations


# ------------------------------------------------------------------------------------------ reservations


class _ReservationState:
    """What a reservation is (as last seen from the server: the fields of
    :class:`~scrawn._wallet_results.ReservationData`, copied by ``_apply``) and the actual amount set for
    its ``with`` block. Amounts are minor units (``Decimal``), times aware UTC ``datetime`` values."""

    # each flavour's own (plain, or coroutine) methods, run as steps by _exit_steps
    cancel: Callable[[], object]
    confirm: Callable[[Any], object]

    def __init__(self, data: ReservationData, idempotency_key: str | None) -> None:
        self.idempotency_key = idempotency_key
        self._actual: str | None = None
        self._apply(data)

    def _apply(self, data: ReservationData) -> None:
        self.id = data.id
        self.user_id = data.user_id
        self.amount = data.amount
        self.status = data.status
        self.expires_at = data.expires_at
        self.created_at = data.created_at
        self.confirmed_amount = data.confirmed_amount
        self.transaction_id = data.transaction_id
        self.description = data.description

    @property
    def active(self) -> bool:
        """Still holding credit, as far as this object knows (``status == "active"``)."""
        return self.status == "active"

    @property
    def actual_amount(self) -> Decimal | None:
        """The amount :meth:`set_actual` gave, confirmed when the ``with`` block ends."""
        return None if self._actual is None else Decimal(self._actual)

    def set_actual(self, actual_amount: Number) -> None:
        """Say what the work cost (``0 ≤ actual ≤ amount``): the reservation is confirmed with it when the
        ``with`` block ends without an exception. Validated now; no network call."""
        self._actual = self._check_actual(actual_amount)

    def _check_actual(self, actual_amount: Any) -> str:
        text = _wallet.check_amount("actual_amount", actual_amount, allow_zero=True)
        if Decimal(text) > self.amount:
            raise _wallet.fail("actual_amount", f"must not exceed the held amount {self.amount}")
        return text

    def _exit_steps(self, exc_type: ExcType, exc: BaseException | None) -> Steps[None]:
        """How the ``with`` block settles an active reservation, as steps (:mod:`scrawn._methods`): when it
        ends normally, confirmed with the actual amount (or cancelled, and an error raised, without one);
        when it raises, cancelled — a failure to cancel is noted on the block's exception, not raised."""
        if not self.active:
            return
        if exc_type is None:
            if self._actual is None:
                yield self.cancel
                raise self._missing_actual()
            yield partial(self.confirm, self._actual)
            return
        try:
            yield self.cancel
        except Exception as error:
            self._cancel_failed(exc, error)

    def _missing_actual(self) -> ValidationError:
        return ValidationError(
            "actual_amount",
            "was never given: call set_actual(amount) or confirm(amount) inside the with block "
            f"(reservation {self.id} was cancelled)",
            context=_NOT_CONFIRMED,
        )

    def _cancel_failed(self, exc: BaseException | None, error: Exception) -> None:
        note = (
            f"scrawn: cancelling reservation {self.id} after the exception failed ({error}); "
            "the hold is released when it expires"
        )
        log.warning("%s", note)
        if exc is not None:
            exc.add_note(note)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.id!r}, user_id={self.user_id!r}, amount={self.amount}, "
            f"status={self.status!r})"
        )


class Reservation(_ReservationState, Settled):
    """A hold on a user's credit (``Scrawn.create_reservation``). As a context manager it is confirmed with
    the amount given to :meth:`set_actual` when the block ends normally, and cancelled when the block
    raises; :meth:`confirm` or :meth:`cancel` inside the block settle it at once instead. Leaving the block
    normally without an actual amount cancels the hold and raises a ``ValidationError`` naming
    ``actual_amount`` — the SDK never guesses what to charge."""

    def __init__(self, client: SyncClient, data: ReservationData, idempotency_key: str | None = None) -> None:
        super().__init__(data, idempotency_key)
        self._client = client

    def confirm(self, actual_amount: Number) -> Confirmation[Reservation]:
        """Take ``actual_amount`` (``0 ≤ actual ≤ amount``) as one ledger entry and release the rest.
        Confirming again with the same amount returns the same transaction."""
        text = self._check_actual(actual_amount)
        done: ConfirmedData = self._client._rpc(_wallet.confirm_reservation(self.id, text))
        self._apply(done.reservation)
        return Confirmation(self, done.transaction_id, done.balance)

    def cancel(self) -> Reservation:
        """Release the hold (a no-op when it is already cancelled or expired)."""
        self._apply(self._client._rpc(_wallet.cancel_reservation(self.id)))
        return self

    def extend(self, ttl_seconds: int) -> Reservation:
        """Move the expiry to now + ``ttl_seconds`` (1–86,400)."""
        self._apply(self._client._rpc(_wallet.extend_reservation(self.id, ttl_seconds)))
        return self

    def _settle(self, exc_type: ExcType, exc: BaseException | None) -> None:
        run(self._exit_steps(exc_type, exc))


class AsyncReservation(_ReservationState, AsyncSettled):
    """:class:`Reservation` for :class:`~scrawn.AsyncScrawn`: ``await r.confirm(...)``, ``async with``."""

    def __init__(
        self, client: AsyncClient, data: ReservationData, idempotency_key: str | None = None
    ) -> None:
        super().__init__(data, idempotency_key)
        self._client = client

    async def confirm(self, actual_amount: Number) -> Confirmation[AsyncReservation]:
        text = self._check_actual(actual_amount)
        done: ConfirmedData = await self._client._rpc(_wallet.confirm_reservation(self.id, text))
        self._apply(done.reservation)
        return Confirmation(self, done.transaction_id, done.balance)

    async def cancel(self) -> AsyncReservation:
        self._apply(await self._client._rpc(_wallet.cancel_reservation(self.id)))
        return self

    async def extend(self, ttl_seconds: int) -> AsyncReservation:
        self._apply(await self._client._rpc(_wallet.extend_reservation(self.id, ttl_seconds)))
        return self

    async def _settle(self, exc_type: ExcType, exc: BaseException | None) -> None:
        await run_async(self._exit_steps(exc_type, exc))


class ReservationRequest:
    """What ``AsyncScrawn.create_reservation(...)`` returns: await it for the :class:`AsyncReservation`, or
    use it directly as ``async with client.create_reservation(...) as hold:``. Its arguments were validated
    when it was made; the reservation is created once, on the first ``await`` or ``async with``."""

    def __init__(self, create: Callable[[], Awaitable[AsyncReservation]]) -> None:
        self._create = create
        self._reservation: AsyncReservation | None = None

    async def _get(self) -> AsyncReservation:
        if self._reservation is None:
            self._reservation = await self._create()
        return self._reservation

    def __await__(self) -> Generator[object, None, AsyncReservation]:
        return self._get().__await__()

    async def __aenter__(self) -> AsyncReservation:
        return await self._get()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reservation is not None:
            await self._reservation.__aexit__(exc_type, exc, tb)


# -------------------------------------------------------------------------------------------- wallets


class _WalletCalls:
    """The calls of both wallet namespaces, each defined once in :mod:`scrawn._wallet` (validation,
    request, result) and sent with the client's retries."""

    def __init__(self, client: SyncClient | AsyncClient) -> None:
        self._client = client

    def _rpc_steps(self, rpc: Rpc[T]) -> Steps[T]:
        return self._client._rpc_steps(rpc)

    balance = call(_wallet.balance)
    credit = call(_wallet.credit)
    debit = call(_wallet.debit)
    transactions = call(_wallet.transactions)
    settings = call(_wallet.settings)
    update_settings = call(_wallet.update_settings)


class Wallet(_WalletCalls, Blocking):
    """``client.wallet``: prepaid credit on the ledger (``wallet.v1.WalletService``). Amounts are minor
    units: ``int``, ``Decimal``, decimal ``str`` or ``float`` in; ``Decimal`` out."""


class AsyncWallet(_WalletCalls, Asyncio):
    """``AsyncScrawn.wallet``: the calls of :class:`Wallet`, awaited."""
