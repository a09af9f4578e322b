"""Prepaid wallets and reservations against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest

from scrawn._proto.wallet.v1 import wallet_pb2 as w
from tests.clients import WALLET, ConnectClient, GrpcClient, RpcError, bearer


def key() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def client(module_server):
    with GrpcClient(module_server.grpc_target) as c:
        auth = bearer(module_server.live_key)
        yield lambda method, request: c.unary(WALLET + method, request, auth)


def test_credit_debit_and_balance(client) -> None:
    k = key()
    first = client("Credit", w.CreditRequest(userId="u", amount="10.5", idempotencyKey=k))
    again = client("Credit", w.CreditRequest(userId="u", amount="10.5", idempotencyKey=k))
    assert not first.duplicate and again.duplicate and again.transaction.id == first.transaction.id
    assert again.balance.balance == "10.5"
    with pytest.raises(RpcError) as conflict:
        client("Credit", w.CreditRequest(userId="u", amount="11", idempotencyKey=k))
    assert conflict.value.code == "already_exists" and "idempotencyKey" in conflict.value.message

    debit = client("Debit", w.DebitRequest(userId="u", amount="0.000001", idempotencyKey=key()))
    assert debit.transaction.amount == "-0.000001" and debit.balance.available == "10.499999"
    with pytest.raises(RpcError) as short:
        client("Debit", w.DebitRequest(userId="u", amount="10.5", idempotencyKey=key()))
    assert short.value.code == "failed_precondition"
    assert "requested 10.5" in short.value.message and "available is 10.499999" in short.value.message
    assert client("GetBalance", w.GetBalanceRequest(userId="u")).balance == "10.499999"
    txs = client("ListTransactions", w.ListTransactionsRequest(userId="u", limit=1))
    assert [t.kind for t in txs.transactions] == ["debit"] and txs.nextPageToken
    rest = client("ListTransactions", w.ListTransactionsRequest(userId="u", pageToken=txs.nextPageToken))
    assert [t.kind for t in rest.transactions] == ["grant"] and not rest.nextPageToken


def test_insufficient_funds_carries_a_detail(module_server) -> None:
    server = module_server
    """The FAILED_PRECONDITION detail names the balance and the requested amount (Connect JSON)."""
    with ConnectClient(server.base_url) as c:
        res = c.http.post(
            WALLET + "Debit",
            json={"userId": "nobody", "amount": "5", "idempotencyKey": key()},
            headers={"authorization": f"Bearer {server.live_key}"},
        )
    body = res.json()
    assert body["code"] == "failed_precondition"
    [detail] = [d for d in body["details"] if d["type"] == "wallet.v1.InsufficientFunds"]
    import base64

    decoded = w.InsufficientFunds.FromString(base64.b64decode(detail["value"] + "=="))
    assert (decoded.currentBalance, decoded.requestedAmount, decoded.available) == ("0", "5", "0")


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("Credit", w.CreditRequest(userId="u", amount="-1", idempotencyKey="k"), "amount"),
        ("Credit", w.CreditRequest(userId="u", amount="0", idempotencyKey="k"), "amount"),
        ("Credit", w.CreditRequest(userId="u", amount="NaN", idempotencyKey="k"), "amount"),
        ("Credit", w.CreditRequest(userId="u", amount="1e30", idempotencyKey="k"), "amount"),
        ("Credit", w.CreditRequest(userId="u", amount="1", idempotencyKey=""), "idempotencyKey"),
        # the server's own keys (a provider payment's credit) cannot be taken first
        (
            "Credit",
            w.CreditRequest(userId="u", amount="1", idempotencyKey="payment:stripe:pi_1"),
            "idempotencyKey",
        ),
        (
            "Debit",
            w.DebitRequest(userId="u", amount="1", idempotencyKey=f"void:{uuid.uuid4()}"),
            "idempotencyKey",
        ),
        ("Credit", w.CreditRequest(userId="", amount="1", idempotencyKey="k"), "userId"),
        ("Credit", w.CreditRequest(userId="u", amount="1", idempotencyKey="k", kind="gift"), "kind"),
        ("Debit", w.DebitRequest(userId="u", amount="Infinity", idempotencyKey="k"), "amount"),
        (
            "CreateReservation",
            w.CreateReservationRequest(userId="u", amount="1", idempotencyKey="k", ttlSeconds=-5),
            "ttlSeconds",
        ),
        (
            "ConfirmReservation",
            w.ConfirmReservationRequest(reservationId="nope", actualAmount="1"),
            "reservationId",
        ),
        (
            "ConfirmReservation",
            w.ConfirmReservationRequest(reservationId=str(uuid.uuid4()), actualAmount="-1"),
            "actualAmount",
        ),
    ],
)
def test_hostile_inputs_name_the_field(client, method: str, request_, field: str) -> None:
    with pytest.raises(RpcError) as err:
        client(method, request_)
    assert err.value.code == "invalid_argument", err.value
    assert f"{field}:" in err.value.message


def test_reservation_lifecycle(client) -> None:
    client("Credit", w.CreditRequest(userId="r", amount="100", idempotencyKey=key()))
    hold = client(
        "CreateReservation", w.CreateReservationRequest(userId="r", amount="60", idempotencyKey=key())
    )
    assert hold.status == "active"
    assert client("GetBalance", w.GetBalanceRequest(userId="r")).available == "40"
    with pytest.raises(RpcError) as over:
        client("CreateReservation", w.CreateReservationRequest(userId="r", amount="41", idempotencyKey=key()))
    assert over.value.code == "failed_precondition"
    with pytest.raises(RpcError) as too_much:
        client("ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="60.1"))
    assert too_much.value.code == "invalid_argument" and "actualAmount" in too_much.value.message
    done = client(
        "ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="12.25")
    )
    assert done.reservation.status == "confirmed" and done.transactionId
    assert (done.balance.balance, done.balance.held, done.balance.available) == ("87.75", "0", "87.75")
    retry = client(
        "ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="12.25")
    )
    assert retry.transactionId == done.transactionId  # a retried confirm is the same confirm
    with pytest.raises(RpcError) as twice:
        client("ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="1"))
    assert twice.value.code == "failed_precondition"
    with pytest.raises(RpcError) as cancel_confirmed:
        client("CancelReservation", w.ReservationIdRequest(reservationId=hold.id))
    assert cancel_confirmed.value.code == "failed_precondition"

    other = client(
        "CreateReservation", w.CreateReservationRequest(userId="r", amount="5", idempotencyKey=key())
    )
    assert client("CancelReservation", w.ReservationIdRequest(reservationId=other.id)).status == "cancelled"
    assert client("GetBalance", w.GetBalanceRequest(userId="r")).held == "0"
    listed = client("ListReservations", w.ListReservationsRequest(userId="r"))
    assert [r.status for r in listed.reservations] == ["cancelled", "confirmed"]


def test_reservations_expire_and_release_their_hold(client) -> None:
    client("Credit", w.CreditRequest(userId="e", amount="10", idempotencyKey=key()))
    hold = client(
        "CreateReservation",
        w.CreateReservationRequest(userId="e", amount="7", idempotencyKey=key(), ttlSeconds=1),
    )
    extended = client("ExtendReservation", w.ExtendReservationRequest(reservationId=hold.id, ttlSeconds=1))
    assert extended.expiresAt >= hold.expiresAt
    deadline = time.monotonic() + 10
    while client("GetBalance", w.GetBalanceRequest(userId="e")).held != "0":
        assert time.monotonic() < deadline, "the hold was never released"
        time.sleep(0.1)
    assert (
        client("ListReservations", w.ListReservationsRequest(userId="e")).reservations[0].status == "expired"
    )
    with pytest.raises(RpcError) as late:
        client("ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="1"))
    assert late.value.code == "failed_precondition" and "expired" in late.value.message
    assert client("GetBalance", w.GetBalanceRequest(userId="e")).balance == "10"


def test_concurrent_debits_and_holds_never_overdraw(module_server) -> None:
    """200 debits and reservations from many clients on 100 units: available never goes below zero and the
    final balance is exactly 100 minus what succeeded."""
    server = module_server
    with GrpcClient(server.grpc_target) as c:
        c.unary(
            WALLET + "Credit",
            w.CreditRequest(userId="c", amount="100", idempotencyKey=key()),
            bearer(server.live_key),
        )

    def attempt(i: int) -> tuple[str, Decimal]:
        with grpc.insecure_channel(server.grpc_target) as channel:
            client = GrpcClient.__new__(GrpcClient)
            client.channel = channel
            try:
                if i % 2:
                    client.unary(
                        WALLET + "Debit",
                        w.DebitRequest(userId="c", amount="1.5", idempotencyKey=key()),
                        bearer(server.live_key),
                    )
                    return "debit", Decimal("1.5")
                client.unary(
                    WALLET + "CreateReservation",
                    w.CreateReservationRequest(userId="c", amount="2", idempotencyKey=key()),
                    bearer(server.live_key),
                )
                return "hold", Decimal(2)
            except RpcError as e:
                assert e.code == "failed_precondition", e
                return "refused", Decimal(0)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(attempt, range(200)))
    debited = sum(a for kind, a in results if kind == "debit")
    held = sum(a for kind, a in results if kind == "hold")
    assert any(kind == "refused" for kind, _ in results)
    assert debited + held <= 100
    with GrpcClient(server.grpc_target) as c:
        final = c.unary(WALLET + "GetBalance", w.GetBalanceRequest(userId="c"), bearer(server.live_key))
    assert Decimal(final.balance) == 100 - debited
    assert Decimal(final.held) == held
    assert Decimal(final.available) >= 0
