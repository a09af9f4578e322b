"""Wallets and reservations through ``Scrawn`` and ``AsyncScrawn`` against a real ``scrawn serve`` (SQLite
and PostgreSQL): balances and ledger entries after credits and debits, ``InsufficientCreditsError`` with
its amounts, reservations as context managers (confirmed, cancelled, the hold released), retries that
reuse the idempotency key (a debit whose response was lost is applied once), and hostile inputs refused
naming the argument before any network call."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from scrawn import (
    AsyncReservation,
    AsyncScrawn,
    Balance,
    Confirmation,
    InsufficientCreditsError,
    Reservation,
    Scrawn,
    SpendCapExceededError,
    TransactionResult,
)
from scrawn._connect import parse_unary
from scrawn._proto.wallet.v1 import wallet_pb2 as w
from scrawn.errors import (
    ConnectionFailedError,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from tests.conftest import ServerHandle
from tests.sdk.conftest import LIVE_SHAPED_KEY, FlakyServer

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}
NAN, INF = float("nan"), float("inf")


def user() -> str:
    return f"wal-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def client(module_server: ServerHandle) -> Any:
    with Scrawn(module_server.live_key, module_server.base_url) as c:
        yield c


@pytest.fixture
async def aclient(module_server: ServerHandle) -> Any:
    async with AsyncScrawn(module_server.live_key, module_server.base_url) as c:
        yield c


def money(balance: Balance) -> tuple[Decimal, Decimal, Decimal]:
    return balance.balance, balance.held, balance.available


# ---------------------------------------------------------------------------- credits, debits, ledger


def test_credit_debit_balance_and_transactions_sync(client: Scrawn) -> None:
    u = user()
    assert money(client.wallet.balance(u)) == (0, 0, 0)
    grant = client.wallet.credit(u, 100)
    assert isinstance(grant, TransactionResult) and not grant.duplicate
    assert (grant.transaction.kind, grant.transaction.amount, grant.balance.balance) == ("grant", 100, 100)
    top_up = client.wallet.credit(u, "2.5", kind="top_up", description="order 7")
    spent = client.wallet.debit(u, Decimal("30.25"), description="report")
    assert money(spent.balance) == (Decimal("72.25"), 0, Decimal("72.25"))
    assert money(client.wallet.balance(u)) == (Decimal("72.25"), 0, Decimal("72.25"))
    assert isinstance(client.wallet.balance(u).balance, Decimal)

    page = client.wallet.transactions(u)
    assert [(t.kind, t.amount) for t in page] == [
        ("debit", Decimal("-30.25")),
        ("top_up", Decimal("2.5")),
        ("grant", Decimal(100)),
    ]
    assert page.next_page_token is None and len(page) == 3
    assert [t.id for t in page] == [spent.id, top_up.id, grant.id]
    assert page.transactions[1].description == "order 7"
    assert all(t.created_at is not None and t.created_at.tzinfo is not None for t in page)

    first = client.wallet.transactions(u, limit=2)
    assert len(first) == 2 and first.next_page_token
    rest = client.wallet.transactions(u, limit=2, page_token=first.next_page_token)
    assert [t.id for t in rest] == [grant.id] and rest.next_page_token is None


async def test_credit_debit_balance_and_transactions_async(aclient: AsyncScrawn) -> None:
    u = user()
    await aclient.wallet.credit(u, 0.1)  # a float through its shortest repr: exactly 0.1
    await aclient.wallet.credit(u, 0.2)
    balance = await aclient.wallet.balance(u)
    assert balance.balance == Decimal("0.3")  # never 0.30000000000000004
    result = await aclient.wallet.debit(u, "0.3")
    assert money(result.balance) == (0, 0, 0)
    page = await aclient.wallet.transactions(u)
    assert [t.amount for t in page] == [Decimal("-0.3"), Decimal("0.2"), Decimal("0.1")]


def test_idempotency_key_applies_once(client: Scrawn) -> None:
    u = user()
    key = f"order-{uuid.uuid4()}"
    first = client.wallet.credit(u, 50, idempotency_key=key)
    again = client.wallet.credit(u, 50, idempotency_key=key)
    assert (first.idempotency_key, again.idempotency_key) == (key, key)
    assert again.duplicate and again.id == first.id
    assert client.wallet.balance(u).balance == 50
    generated = client.wallet.debit(u, 1)
    assert uuid.UUID(generated.idempotency_key)  # a fresh UUID per logical call


def test_credit_with_an_expiry(client: Scrawn) -> None:
    u = user()
    at = datetime.now(UTC) + timedelta(days=3)
    result = client.wallet.credit(u, 20, expires_at=at)
    expected = int(at.timestamp()) + (1 if at.timestamp() % 1 else 0)
    assert result.transaction.expires_at == datetime.fromtimestamp(expected, UTC)
    relative = client.wallet.credit(u, 5, expires_at=timedelta(hours=1))
    assert relative.transaction.expires_at is not None
    assert relative.transaction.expires_at > datetime.now(UTC) + timedelta(minutes=59)
    assert client.wallet.transactions(u).transactions[0].expires_at == relative.transaction.expires_at


# ------------------------------------------------------------------------------- insufficient credits


def _check_insufficient(
    error: InsufficientCreditsError, balance: str, available: str, requested: str
) -> None:
    assert isinstance(error, FailedPreconditionError) and error.code == "failed_precondition"
    assert (error.current_balance, error.available, error.requested_amount) == (
        Decimal(balance),
        Decimal(available),
        Decimal(requested),
    )
    amounts = (error.current_balance, error.available, error.requested_amount)
    assert all(isinstance(v, Decimal) for v in amounts)
    assert error.field == "amount" and "Insufficient funds" in error.message


def test_insufficient_credits_error_fields_sync(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 10)
    with pytest.raises(InsufficientCreditsError) as caught:
        client.wallet.debit(u, "10.5")
    _check_insufficient(caught.value, "10", "10", "10.5")
    with client.create_reservation(u, 4) as hold:
        # available is balance − held: 6 left
        with pytest.raises(InsufficientCreditsError) as caught:
            client.wallet.debit(u, 7)
        _check_insufficient(caught.value, "10", "6", "7")
        with pytest.raises(InsufficientCreditsError) as caught:
            client.create_reservation(u, "6.000001")
        _check_insufficient(caught.value, "10", "6", "6.000001")
        hold.set_actual(0)
    assert money(client.wallet.balance(u)) == (10, 0, 10)  # nothing moved


async def test_insufficient_credits_error_fields_async(aclient: AsyncScrawn) -> None:
    u = user()
    with pytest.raises(InsufficientCreditsError) as caught:
        await aclient.wallet.debit(u, 5)
    _check_insufficient(caught.value, "0", "0", "5")
    with pytest.raises(InsufficientCreditsError):
        await aclient.create_reservation(u, 1)


def _connect_error(body: dict[str, Any]) -> Any:
    with pytest.raises(Exception) as caught:
        parse_unary(400, {"content-type": "application/json"}, json.dumps(body).encode(), w.Balance)
    return caught.value


def test_insufficient_funds_detail_and_message_fallback() -> None:
    detail = w.InsufficientFunds(currentBalance="3", available="1.5", requestedAmount="2").SerializeToString()
    message = "Insufficient funds: amount: requested 2 but available is 1.5 (balance 3)"
    for value in (base64.b64encode(detail).decode().rstrip("="), base64.b64encode(detail).decode()):
        error = _connect_error(
            {
                "code": "failed_precondition",
                "message": "something else entirely",
                "details": [{"type": "wallet.v1.InsufficientFunds", "value": value}],
            }
        )
        assert isinstance(error, InsufficientCreditsError)
        assert (error.current_balance, error.available, error.requested_amount) == (3, Decimal("1.5"), 2)
    # No (or a malformed) detail: the message still says it all.
    for details in (None, [{"type": "wallet.v1.InsufficientFunds", "value": "!!not base64"}], "junk"):
        error = _connect_error({"code": "failed_precondition", "message": message, "details": details})
        assert isinstance(error, InsufficientCreditsError) and error.field == "amount"
        assert (error.current_balance, error.available, error.requested_amount) == (3, Decimal("1.5"), 2)
    # Another precondition is not an insufficient-credits error.
    other = _connect_error(
        {"code": "failed_precondition", "message": "reservationId: reservation is cancelled"}
    )
    assert type(other) is FailedPreconditionError and other.field == "reservationId"


def test_spend_cap_exceeded_error_and_settings(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 100)
    settings = client.wallet.update_settings(u, spend_cap=5, low_balance_threshold="-2.5")
    assert (settings.spend_cap, settings.low_balance_threshold, settings.cap_remaining) == (
        5,
        Decimal("-2.5"),
        5,
    )
    client.wallet.debit(u, 4)
    with pytest.raises(SpendCapExceededError) as caught:
        client.wallet.debit(u, 2)
    error = caught.value
    assert isinstance(error, FailedPreconditionError)
    assert (error.spend_cap, error.spent, error.held, error.requested_amount) == (5, 4, 0, 2)
    assert error.period == client.wallet.settings(u).period
    assert client.wallet.update_settings(u, spend_cap=None).spend_cap is None
    assert client.wallet.settings(u).low_balance_threshold == Decimal("-2.5")  # left unchanged
    client.wallet.debit(u, 2)


# ------------------------------------------------------------------------------------------ reservations


def test_reservation_context_manager_confirms_sync(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 100)
    with client.create_reservation(u, 40, ttl_seconds=60, description="chat") as hold:
        assert isinstance(hold, Reservation) and hold.active
        assert (hold.amount, hold.user_id, hold.description) == (40, u, "chat")
        assert hold.expires_at is not None and hold.created_at is not None
        assert timedelta(seconds=55) < hold.expires_at - hold.created_at <= timedelta(seconds=61)
        assert money(client.wallet.balance(u)) == (100, 40, 60)
        hold.set_actual("25.5")
        assert hold.actual_amount == Decimal("25.5") and hold.active  # nothing sent yet
    assert (hold.status, hold.confirmed_amount) == ("confirmed", Decimal("25.5"))
    assert hold.transaction_id
    assert money(client.wallet.balance(u)) == (Decimal("74.5"), 0, Decimal("74.5"))
    capture = client.wallet.transactions(u).transactions[0]
    assert (capture.kind, capture.amount, capture.reservation_id, capture.id) == (
        "capture",
        Decimal("-25.5"),
        hold.id,
        hold.transaction_id,
    )


def test_reservation_context_manager_cancels_on_exception_sync(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 10)
    with pytest.raises(RuntimeError, match="the LLM call failed"), client.create_reservation(u, 8) as hold:
        assert money(client.wallet.balance(u)) == (10, 8, 2)
        hold.set_actual(3)  # an exception still cancels
        raise RuntimeError("the LLM call failed")
    assert hold.status == "cancelled"
    assert money(client.wallet.balance(u)) == (10, 0, 10)  # the hold is released, nothing taken
    assert [t.kind for t in client.wallet.transactions(u)] == ["grant"]


def test_reservation_without_an_actual_amount_is_cancelled_and_raises(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 10)
    with pytest.raises(ValidationError) as caught, client.create_reservation(u, 5) as hold:
        pass
    assert caught.value.field == "actual_amount" and "cancelled" in caught.value.message
    assert hold.status == "cancelled" and money(client.wallet.balance(u)) == (10, 0, 10)


def test_reservation_confirmed_or_cancelled_inside_the_block(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 10)
    with client.create_reservation(u, 5) as hold:
        done = hold.confirm(2)
        assert isinstance(done, Confirmation) and done.reservation is hold
        assert (done.amount, done.balance.balance, done.balance.held) == (2, 8, 0)
        assert done.transaction_id == hold.transaction_id
    with client.create_reservation(u, 5) as second:
        second.cancel()
    assert second.status == "cancelled"
    with pytest.raises(KeyError), client.create_reservation(u, 5) as third:
        third.confirm(1)
        raise KeyError("after the confirmation")
    assert third.status == "confirmed"  # a confirmed hold is not cancelled by a later exception
    assert money(client.wallet.balance(u)) == (7, 0, 7)
    with pytest.raises(ValidationError) as caught:
        second.set_actual(6)
    assert caught.value.field == "actual_amount"


async def test_reservation_context_manager_async(aclient: AsyncScrawn) -> None:
    u = user()
    await aclient.wallet.credit(u, 100)
    async with aclient.create_reservation(u, 30) as hold:
        assert isinstance(hold, AsyncReservation)
        assert money(await aclient.wallet.balance(u)) == (100, 30, 70)
        hold.set_actual(12)
    assert (hold.status, hold.confirmed_amount) == ("confirmed", 12)

    with pytest.raises(TimeoutError):
        async with aclient.create_reservation(u, 50) as failed:
            assert money(await aclient.wallet.balance(u)) == (88, 50, 38)
            raise TimeoutError
    assert failed.status == "cancelled"

    hold = await aclient.create_reservation(u, 10)
    async with hold:
        done = await hold.confirm(10)
        assert done.reservation is hold
    assert money(await aclient.wallet.balance(u)) == (78, 0, 78)

    with pytest.raises(ValidationError) as caught:
        async with aclient.create_reservation(u, 5):
            pass
    assert caught.value.field == "actual_amount"
    assert money(await aclient.wallet.balance(u)) == (78, 0, 78)


def test_reservation_calls_by_id_sync(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 50)
    hold = client.create_reservation(u, 20, ttl_seconds=30)
    before = hold.expires_at
    assert before is not None
    extended = client.extend_reservation(hold.id, 3600)
    assert extended.id == hold.id and extended.expires_at is not None and extended.expires_at > before
    active = client.list_reservations(u, active_only=True)
    assert [r.id for r in active] == [hold.id] and active.next_page_token is None
    assert isinstance(active.reservations[0], Reservation)

    cancelled = client.cancel_reservation(hold)  # a Reservation works as well as its id
    assert cancelled is hold and hold.status == "cancelled"
    assert client.cancel_reservation(hold.id).status == "cancelled"  # again: a no-op
    assert list(client.list_reservations(u, active_only=True)) == []
    assert [r.status for r in client.list_reservations(u)] == ["cancelled"]
    with pytest.raises(FailedPreconditionError) as caught:
        client.confirm_reservation(hold.id, 1)
    assert caught.value.field == "reservationId" and not isinstance(caught.value, InsufficientCreditsError)

    second = client.create_reservation(u, 20)
    done = client.confirm_reservation(second.id, "19.99")
    assert done.reservation.status == "confirmed" and done.balance.balance == Decimal("30.01")
    assert client.confirm_reservation(second.id, "19.99").transaction_id == done.transaction_id  # safe retry
    with pytest.raises(NotFoundError):
        client.cancel_reservation(str(uuid.uuid4()))


async def test_reservation_calls_by_id_async(aclient: AsyncScrawn) -> None:
    u = user()
    await aclient.wallet.credit(u, 50)
    hold = await aclient.create_reservation(u, 20)
    assert (await aclient.extend_reservation(hold, 120)).status == "active"
    page = await aclient.list_reservations(u, active_only=True, limit=1)
    assert [r.id for r in page] == [hold.id]
    done = await aclient.confirm_reservation(hold.id, 5)
    assert isinstance(done.reservation, AsyncReservation) and done.reservation.confirmed_amount == 5
    other = await aclient.create_reservation(u, 1)
    assert (await aclient.cancel_reservation(other.id)).status == "cancelled"
    assert money(await aclient.wallet.balance(u)) == (45, 0, 45)


# --------------------------------------------------------------------------------------------- retries


def _keys(flaky: FlakyServer, message: Any) -> list[str]:
    return [message.FromString(a.body).idempotencyKey for a in flaky.attempts]


def test_a_debit_whose_response_was_lost_is_applied_once(
    module_server: ServerHandle, flaky: FlakyServer
) -> None:
    u = user()
    with Scrawn(module_server.live_key, module_server.base_url) as direct:
        direct.wallet.credit(u, 100)
    flaky.script = ["forward_drop", "unavailable"]
    with Scrawn(module_server.live_key, flaky.url, max_retries=3, **FAST) as client:
        result = client.wallet.debit(u, 30)
        assert len(flaky.attempts) == 3
        assert set(_keys(flaky, w.DebitRequest)) == {result.idempotency_key}
        assert result.duplicate  # the first attempt was applied; its answer was lost
        assert money(client.wallet.balance(u)) == (70, 0, 70)
        assert [t.kind for t in client.wallet.transactions(u)] == ["debit", "grant"]


async def test_credit_and_reservation_retries_reuse_the_key_async(
    module_server: ServerHandle, flaky: FlakyServer
) -> None:
    u = user()
    async with AsyncScrawn(module_server.live_key, flaky.url, max_retries=3, **FAST) as client:
        flaky.script = ["forward_drop", "http502"]
        credit = await client.wallet.credit(u, 10, idempotency_key="topup-1")
        assert set(_keys(flaky, w.CreditRequest)) == {"topup-1"} and len(flaky.attempts) == 3
        assert credit.duplicate
        flaky.attempts.clear()
        flaky.script = ["forward_drop"]
        hold = await client.create_reservation(u, 4)
        assert len(flaky.attempts) == 2
        assert set(_keys(flaky, w.CreateReservationRequest)) == {hold.idempotency_key}
        assert len(await client.list_reservations(u)) == 1  # one hold, not two
        assert money(await client.wallet.balance(u)) == (10, 4, 6)


def test_non_retryable_wallet_errors_raise_at_once(module_server: ServerHandle, flaky: FlakyServer) -> None:
    with Scrawn(module_server.live_key, flaky.url, **FAST) as client:
        flaky.script = ["permission_denied"]
        with pytest.raises(PermissionDeniedError):
            client.wallet.balance(user())
        assert len(flaky.attempts) == 1
        with pytest.raises(InsufficientCreditsError):  # the server's own FAILED_PRECONDITION, forwarded
            client.wallet.debit(user(), 1)
        assert len(flaky.attempts) == 2


# ---------------------------------------------------------------------------------------- hostile inputs

BAD_AMOUNTS = [
    None, True, -1, 0, "0", 0.0, -0.5, NAN, INF, Decimal("NaN"), Decimal("-1"), "abc", "", [], "1e30",
    "0.0000001", 2**80,
]  # fmt: skip


def _sync_cases(c: Scrawn) -> list[tuple[str, Callable[[], Any]]]:
    rid = str(uuid.uuid4())
    cases: list[tuple[str, Callable[[], Any]]] = []
    for bad in [None, 7, "", " ", "x" * 257, "a\x00b"]:
        cases += [
            ("user_id", lambda b=bad: c.wallet.balance(b)),
            ("user_id", lambda b=bad: c.wallet.credit(b, 1)),
            ("user_id", lambda b=bad: c.wallet.debit(b, 1)),
            ("user_id", lambda b=bad: c.wallet.transactions(b)),
            ("user_id", lambda b=bad: c.wallet.settings(b)),
            ("user_id", lambda b=bad: c.create_reservation(b, 1)),
        ]
    for bad in BAD_AMOUNTS:
        cases += [
            ("amount", lambda b=bad: c.wallet.credit("u", b)),
            ("amount", lambda b=bad: c.wallet.debit("u", b)),
            ("amount", lambda b=bad: c.create_reservation("u", b)),
        ]
    for bad in [None, -1, NAN, "x", "1e30", [], True]:
        cases.append(("actual_amount", lambda b=bad: c.confirm_reservation(rid, b)))
    for bad in [None, "", "nope", 42, str(uuid.uuid4())[:-1]]:
        cases += [
            ("reservation_id", lambda b=bad: c.confirm_reservation(b, 1)),
            ("reservation_id", lambda b=bad: c.cancel_reservation(b)),
            ("reservation_id", lambda b=bad: c.extend_reservation(b, 60)),
        ]
    for bad in [0, -5, 86_401, 1.5, "60", True, None]:
        cases += [
            ("ttl_seconds", lambda b=bad: c.create_reservation("u", 1, ttl_seconds=b)),
            ("ttl_seconds", lambda b=bad: c.extend_reservation(rid, b)),
        ]
    for bad in ["", "  ", "k" * 256, "a\x00", 5]:
        cases += [
            ("idempotency_key", lambda b=bad: c.wallet.credit("u", 1, idempotency_key=b)),
            ("idempotency_key", lambda b=bad: c.wallet.debit("u", 1, idempotency_key=b)),
            ("idempotency_key", lambda b=bad: c.create_reservation("u", 1, idempotency_key=b)),
        ]
    past = datetime.now(UTC) - timedelta(seconds=5)
    for bad in [past, datetime(2030, 1, 1), 1_900_000_000, "tomorrow", timedelta(days=-1)]:
        cases.append(("expires_at", lambda b=bad: c.wallet.credit("u", 1, expires_at=b)))
    cases += [
        ("kind", lambda: c.wallet.credit("u", 1, kind="gift")),  # type: ignore[arg-type]
        ("kind", lambda: c.wallet.credit("u", 1, kind=None)),  # type: ignore[arg-type]
        ("description", lambda: c.wallet.debit("u", 1, description="d" * 256)),
        ("description", lambda: c.wallet.debit("u", 1, description=5)),  # type: ignore[arg-type]
        ("limit", lambda: c.wallet.transactions("u", limit=0)),
        ("limit", lambda: c.wallet.transactions("u", limit=501)),
        ("limit", lambda: c.list_reservations(limit="5")),  # type: ignore[arg-type]
        ("page_token", lambda: c.wallet.transactions("u", page_token=5)),  # type: ignore[arg-type]
        ("active_only", lambda: c.list_reservations(active_only="yes")),  # type: ignore[arg-type]
        ("user_id", lambda: c.list_reservations("")),
        ("spend_cap", lambda: c.wallet.update_settings("u", spend_cap=-1)),
        ("spend_cap", lambda: c.wallet.update_settings("u", spend_cap=NAN)),
        ("low_balance_threshold", lambda: c.wallet.update_settings("u", low_balance_threshold="x")),
        ("low_balance_threshold", lambda: c.wallet.update_settings("u", low_balance_threshold="1e40")),
    ]
    return cases


def test_hostile_wallet_inputs_are_refused_before_the_network_sync(closed_url: str) -> None:
    with Scrawn(LIVE_SHAPED_KEY, closed_url, max_retries=0) as c:
        cases = _sync_cases(c)
        assert len(cases) > 120
        for field, call in cases:
            with pytest.raises(ValidationError) as caught:
                call()
            assert caught.value.field == field, (field, caught.value)
            assert field in str(caught.value)
        with pytest.raises(ConnectionFailedError):  # the same client does reach for the network
            c.wallet.balance("u")


async def test_hostile_wallet_inputs_are_refused_before_the_network_async(closed_url: str) -> None:
    async with AsyncScrawn(LIVE_SHAPED_KEY, closed_url, max_retries=0) as c:
        rid = str(uuid.uuid4())
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("user_id", lambda: c.wallet.balance("")),
            ("amount", lambda: c.wallet.credit("u", -1)),
            ("amount", lambda: c.wallet.debit("u", NAN)),
            ("amount", lambda: c.wallet.debit("u", 0)),
            ("kind", lambda: c.wallet.credit("u", 1, kind="x")),  # type: ignore[arg-type]
            ("expires_at", lambda: c.wallet.credit("u", 1, expires_at=datetime(2000, 1, 1, tzinfo=UTC))),
            ("limit", lambda: c.wallet.transactions("u", limit=-1)),
            ("actual_amount", lambda: c.confirm_reservation(rid, INF)),
            ("reservation_id", lambda: c.cancel_reservation("x")),
            ("ttl_seconds", lambda: c.extend_reservation(rid, 0)),
            ("active_only", lambda: c.list_reservations(active_only=1)),  # type: ignore[arg-type]
            ("spend_cap", lambda: c.wallet.update_settings("u", spend_cap="-3")),
        ]
        for field, call in cases:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field, (field, caught.value)
        # create_reservation validates when it is called, before anything is awaited.
        for field, make in [
            ("amount", lambda: c.create_reservation("u", "-2")),
            ("user_id", lambda: c.create_reservation(None, 1)),  # type: ignore[arg-type]
            ("ttl_seconds", lambda: c.create_reservation("u", 1, ttl_seconds=0)),
        ]:
            with pytest.raises(ValidationError) as caught:
                make()
            assert caught.value.field == field
        with pytest.raises(ConnectionFailedError):
            await c.create_reservation("u", 1)
