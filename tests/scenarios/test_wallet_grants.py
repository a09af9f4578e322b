"""Credits with an expiry, spend caps and low-balance alerts against a real server, on SQLite and
PostgreSQL (docs/wallets.md). Expiry runs on real time with expiries a few seconds out; the only deadlines
are generous polling bounds."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.wallet.v1 import wallet_pb2 as w
from tests.clients import REGISTER, WALLET, ConnectClient, GrpcClient, RpcError, bearer
from tests.scenarios.wallet_checks import alerts_of, assert_invariants, entries_of, key, lots_of, wait_for


@pytest.fixture
def client(module_server):
    with GrpcClient(module_server.grpc_target) as c:
        auth = bearer(module_server.live_key)
        yield lambda method, request: c.unary(WALLET + method, request, auth)


@pytest.fixture
def usage(module_server):
    """Bill a postpaid usage event (whole minor units) through RegisterEvent."""
    with GrpcClient(module_server.grpc_target) as c:
        auth = bearer(module_server.live_key)

        def bill(user: str, amount: int) -> Any:
            request = ev.RegisterEventRequest(
                type=ev.BASIC_USAGE,
                userId=user,
                idempotencyKey=key(),
                basicUsage=ev.BasicUsage(amount=amount),
            )
            return c.unary(REGISTER, request, auth)

        yield bill


def credit(client, user: str, amount: str, expires_in: int | None = None, **extra: Any) -> Any:
    request = w.CreditRequest(userId=user, amount=amount, idempotencyKey=key(), **extra)
    if expires_in is not None:
        request.expiresAt = int(time.time()) + expires_in
    return client("Credit", request)


def balance(client, user: str) -> Any:
    return client("GetBalance", w.GetBalanceRequest(userId=user))


def remaining(server, user: str) -> list[Decimal]:
    return [lot.remaining for lot in lots_of(server, user)]


# Consumption order --------------------------------------------------------------------------------------


def test_every_debit_consumes_soonest_expiring_credit_first(module_server, client, usage) -> None:
    user = "lots-order"
    later = credit(client, user, "10", expires_in=7200)
    credit(client, user, "10")  # never expires: spent last
    sooner = credit(client, user, "10", expires_in=3600)
    soonest = credit(client, user, "10", expires_in=1800)
    assert later.transaction.HasField("expiresAt") and not credit(client, user, "0.5").transaction.HasField(
        "expiresAt"
    )
    assert [lot.id for lot in lots_of(module_server, user)] == [
        soonest.transaction.id,
        sooner.transaction.id,
        later.transaction.id,
    ]

    client("Debit", w.DebitRequest(userId=user, amount="15", idempotencyKey=key()))  # soonest 10, sooner 5
    assert remaining(module_server, user) == [0, 5, 10]

    hold = client(
        "CreateReservation", w.CreateReservationRequest(userId=user, amount="8", idempotencyKey=key())
    )
    assert remaining(module_server, user) == [0, 5, 10]  # a hold consumes nothing
    client("ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="6"))
    assert remaining(module_server, user) == [0, 0, 9]  # the capture: sooner 5, later 1

    usage(user, 12)  # postpaid usage: later 9, then 3 of the permanent credit
    assert remaining(module_server, user) == [0, 0, 0]
    assert balance(client, user).balance == str(40 + Decimal("0.5") - 15 - 6 - 12)
    usage(user, 10)  # beyond everything: the balance goes negative, lots stay at zero
    assert balance(client, user).balance == str(Decimal("7.5") - 10)
    assert remaining(module_server, user) == [0, 0, 0]

    txs = client("ListTransactions", w.ListTransactionsRequest(userId=user, limit=100)).transactions
    grants = {t.id: t for t in txs if t.kind == "grant"}
    assert grants[soonest.transaction.id].expiresAt == soonest.transaction.expiresAt > 0
    assert_invariants(module_server)


# Expiry -------------------------------------------------------------------------------------------------


def test_unconsumed_credit_expires_on_time_exactly_once(module_server, client) -> None:
    user = "lots-expire"
    grant = credit(client, user, "10", expires_in=2)
    credit(client, user, "5")
    client("Debit", w.DebitRequest(userId=user, amount="3", idempotencyKey=key()))
    assert balance(client, user).balance == "12"
    wait_for(lambda: balance(client, user).balance == "5", "the grant's remainder to expire")
    [expiry] = entries_of(module_server, user, "expiry")
    assert expiry.amount == Decimal(-7) and grant.transaction.id in expiry.description
    [lot] = lots_of(module_server, user)
    assert (lot.remaining, lot.expired, lot.expiry_count, lot.due_at) == (0, 7, 1, None)
    time.sleep(1.5)  # several more sweeps on every process: nothing more expires
    assert len(entries_of(module_server, user, "expiry")) == 1 and balance(client, user).balance == "5"
    txs = client("ListTransactions", w.ListTransactionsRequest(userId=user)).transactions
    assert txs[0].kind == "expiry" and txs[0].amount == "-7"
    assert_invariants(module_server)


def test_credit_needed_by_holds_expires_when_they_end(module_server, client) -> None:
    user = "lots-held"
    credit(client, user, "10", expires_in=2)
    credit(client, user, "2")
    hold = client(
        "CreateReservation", w.CreateReservationRequest(userId=user, amount="8", idempotencyKey=key())
    )
    # At expiry the hold keeps what it needs: 4 of the 10 expire, available falls to 0, never below.
    wait_for(lambda: balance(client, user).balance == "8", "the unheld part to expire")
    now = balance(client, user)
    assert (now.held, now.available) == ("8", "0")
    assert [lot.remaining for lot in lots_of(module_server, user)] == [6]
    # The capture spends the expired credit first (5 of its 6); the 1 left expires with the hold's end.
    done = client("ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="5"))
    assert (done.balance.balance, done.balance.held, done.balance.available) == ("2", "0", "2")
    assert [e.amount for e in entries_of(module_server, user, "expiry")] == [Decimal(-4), Decimal(-1)]
    [lot] = lots_of(module_server, user)
    assert (lot.remaining, lot.expired, lot.expiry_count) == (0, 5, 2)
    assert_invariants(module_server)


def test_a_cancelled_hold_lets_held_back_credit_expire(module_server, client) -> None:
    user = "lots-cancel"
    credit(client, user, "10", expires_in=2)
    hold = client(
        "CreateReservation", w.CreateReservationRequest(userId=user, amount="10", idempotencyKey=key())
    )
    wait_for(
        lambda: any(lot.due_at and lot.due_at > lot.expires_at for lot in lots_of(module_server, user)),
        "a sweeper to find the grant held back",
    )
    assert balance(client, user).balance == "10" and entries_of(module_server, user, "expiry") == []
    client("CancelReservation", w.ReservationIdRequest(reservationId=hold.id))
    assert (balance(client, user).balance, balance(client, user).held) == ("0", "0")
    assert [e.amount for e in entries_of(module_server, user, "expiry")] == [Decimal(-10)]
    assert_invariants(module_server)


def test_a_credit_while_owing_pays_the_debt_first(module_server, client, usage) -> None:
    user = "lots-debt"
    usage(user, 4)
    grant = credit(client, user, "10", expires_in=2)
    assert grant.balance.balance == "6"
    assert remaining(module_server, user) == [6]  # only what is left after the debt can expire
    wait_for(lambda: balance(client, user).balance == "0", "the rest of the grant to expire")
    assert [e.amount for e in entries_of(module_server, user, "expiry")] == [Decimal(-6)]
    assert_invariants(module_server)


def test_usage_after_expiry_never_spends_expired_credit(module_server, client, usage) -> None:
    """An operation that arrives after the expiry but before any sweep expires the credit itself first."""
    user = "lots-late"
    credit(client, user, "10", expires_in=1)
    time.sleep(2.2)
    usage(user, 3)
    credit(client, user, "1")
    assert balance(client, user).balance == "-2"
    assert [e.amount for e in entries_of(module_server, user, "expiry")] == [Decimal(-10)]
    assert_invariants(module_server)


@pytest.mark.parametrize(
    ("expires_at", "problem"),
    [
        (lambda now: now - 10, "must be in the future"),
        (lambda now: now, "must be in the future"),
        (lambda now: 0, "must be in the future"),
        (lambda now: -1, "must be in the future"),
        (lambda now: 2**62, "must be at most"),
        (lambda now: 253_402_300_800, "must be at most"),
    ],
)
def test_hostile_expiry_names_the_field(client, expires_at, problem: str) -> None:
    request = w.CreditRequest(userId="lots-hostile", amount="1", idempotencyKey=key())
    request.expiresAt = expires_at(int(time.time()))
    with pytest.raises(RpcError) as err:
        client("Credit", request)
    assert err.value.code == "invalid_argument" and "expiresAt:" in err.value.message
    assert problem in err.value.message


def test_a_retried_credit_must_repeat_its_expiry(client) -> None:
    at, k = int(time.time()) + 3600, key()
    first = client("Credit", w.CreditRequest(userId="lots-retry", amount="3", idempotencyKey=k, expiresAt=at))
    again = client("Credit", w.CreditRequest(userId="lots-retry", amount="3", idempotencyKey=k, expiresAt=at))
    assert (
        again.duplicate and again.transaction.id == first.transaction.id and again.transaction.expiresAt == at
    )
    for other in (w.CreditRequest(expiresAt=at + 1), w.CreditRequest()):
        other.MergeFrom(w.CreditRequest(userId="lots-retry", amount="3", idempotencyKey=k))
        with pytest.raises(RpcError) as err:
            client("Credit", other)
        assert err.value.code == "already_exists" and "idempotencyKey" in err.value.message


def test_expiry_over_connect_json(module_server) -> None:
    with ConnectClient(module_server.base_url) as c:
        auth = {"authorization": f"Bearer {module_server.live_key}"}
        ok = c.http.post(
            WALLET + "Credit",
            json={
                "userId": "lots-json",
                "amount": "2",
                "idempotencyKey": key(),
                "expiresAt": str(int(time.time()) + 60),
            },
            headers=auth,
        )
        assert ok.status_code == 200 and int(ok.json()["transaction"]["expiresAt"]) > time.time()
        bad = c.http.post(
            WALLET + "Credit",
            json={"userId": "lots-json", "amount": "2", "idempotencyKey": key(), "expiresAt": "soon"},
            headers=auth,
        )
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"


# Spend caps ---------------------------------------------------------------------------------------------


def settings(client, user: str, **values: str) -> Any:
    return client("UpdateUserSettings", w.UpdateUserSettingsRequest(userId=user, **values))


def test_spend_cap_refuses_debits_and_holds_past_it(module_server, client, usage) -> None:
    user = "cap-basic"
    credit(client, user, "100")
    got = settings(client, user, spendCap="10")
    assert (got.spendCap, got.spent, got.capRemaining, got.lowBalanceThreshold) == ("10", "0", "10", "")
    assert got.period == time.strftime("%Y-%m", time.gmtime())
    client("Debit", w.DebitRequest(userId=user, amount="6", idempotencyKey=key()))
    with pytest.raises(RpcError) as over:
        client("Debit", w.DebitRequest(userId=user, amount="5", idempotencyKey=key()))
    assert over.value.code == "failed_precondition"
    assert "amount:" in over.value.message and "spend cap 10" in over.value.message
    assert "only 4 remains" in over.value.message
    hold = client(
        "CreateReservation", w.CreateReservationRequest(userId=user, amount="4", idempotencyKey=key())
    )
    with pytest.raises(RpcError) as held:  # holds count against the cap
        client(
            "CreateReservation",
            w.CreateReservationRequest(userId=user, amount="0.000001", idempotencyKey=key()),
        )
    assert held.value.code == "failed_precondition" and "spend cap" in held.value.message
    client("ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="1.5"))
    assert client("GetUserSettings", w.GetUserSettingsRequest(userId=user)).capRemaining == "2.5"
    client("Debit", w.DebitRequest(userId=user, amount="2.5", idempotencyKey=key()))
    usage(user, 7)  # postpaid usage is never refused, but it counts
    now = client("GetUserSettings", w.GetUserSettingsRequest(userId=user))
    assert (now.spent, now.held, now.capRemaining) == ("17", "0", "0")
    assert balance(client, user).balance == "83"
    credit(client, user, "1")  # credits are not spend
    assert client("GetUserSettings", w.GetUserSettingsRequest(userId=user)).spent == "17"

    settings(client, user, spendCap="")  # removed: debits pass again
    client("Debit", w.DebitRequest(userId=user, amount="1", idempotencyKey=key()))
    assert client("GetUserSettings", w.GetUserSettingsRequest(userId=user)).capRemaining == ""
    assert_invariants(module_server)


def test_spend_cap_refusal_carries_a_detail(module_server, client) -> None:
    user = "cap-detail"
    credit(client, user, "5")
    settings(client, user, spendCap="0")  # nothing may be spent
    with ConnectClient(module_server.base_url) as c:
        res = c.http.post(
            WALLET + "Debit",
            json={"userId": user, "amount": "1", "idempotencyKey": key()},
            headers={"authorization": f"Bearer {module_server.live_key}"},
        )
    body = res.json()
    assert body["code"] == "failed_precondition" and "amount:" in body["message"]
    [detail] = [d for d in body["details"] if d["type"] == "wallet.v1.SpendCapExceeded"]
    assert detail["type"] == "wallet.v1.SpendCapExceeded"
    decoded = w.SpendCapExceeded.FromString(base64.b64decode(detail["value"] + "=="))
    assert (decoded.spendCap, decoded.spent, decoded.held, decoded.requestedAmount) == ("0", "0", "0", "1")
    assert decoded.period == time.strftime("%Y-%m", time.gmtime())


def test_settings_change_only_what_is_given(client) -> None:
    user = "cap-partial"
    settings(client, user, spendCap="50", lowBalanceThreshold="-5")
    got = settings(client, user, lowBalanceThreshold="3")
    assert (got.spendCap, got.lowBalanceThreshold) == ("50", "3")
    got = settings(client, user)
    assert (got.spendCap, got.lowBalanceThreshold) == ("50", "3")
    got = settings(client, user, spendCap="", lowBalanceThreshold="")
    assert (got.spendCap, got.lowBalanceThreshold) == ("", "")
    fresh = client("GetUserSettings", w.GetUserSettingsRequest(userId="cap-never-seen"))
    assert (fresh.spendCap, fresh.spent, fresh.held) == ("", "0", "0")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"spendCap": "-1"}, "spendCap"),
        ({"spendCap": "NaN"}, "spendCap"),
        ({"spendCap": "Infinity"}, "spendCap"),
        ({"spendCap": "1e30"}, "spendCap"),
        ({"spendCap": "ten"}, "spendCap"),
        ({"lowBalanceThreshold": "NaN"}, "lowBalanceThreshold"),
        ({"lowBalanceThreshold": "-1e30"}, "lowBalanceThreshold"),
        ({"lowBalanceThreshold": "1,5"}, "lowBalanceThreshold"),
    ],
)
def test_hostile_settings_name_the_field(client, values: dict[str, str], field: str) -> None:
    with pytest.raises(RpcError) as err:
        settings(client, "cap-hostile", **values)
    assert err.value.code == "invalid_argument" and f"{field}:" in err.value.message
    got = client("GetUserSettings", w.GetUserSettingsRequest(userId="cap-hostile"))
    assert (got.spendCap, got.lowBalanceThreshold) == ("", "")


@pytest.mark.parametrize("method", ["GetUserSettings", "UpdateUserSettings"])
def test_settings_need_a_user(client, method: str) -> None:
    request: Any = (
        w.GetUserSettingsRequest() if method == "GetUserSettings" else w.UpdateUserSettingsRequest()
    )
    with pytest.raises(RpcError) as err:
        client(method, request)
    assert err.value.code == "invalid_argument" and "userId:" in err.value.message


def test_settings_are_per_mode_and_need_a_key(module_server) -> None:
    with GrpcClient(module_server.grpc_target) as c:
        c.unary(
            WALLET + "UpdateUserSettings",
            w.UpdateUserSettingsRequest(userId="cap-mode", spendCap="1"),
            bearer(module_server.live_key),
        )
        test_mode = c.unary(
            WALLET + "GetUserSettings",
            w.GetUserSettingsRequest(userId="cap-mode"),
            bearer(module_server.test_key),
        )
        assert test_mode.spendCap == ""
        with pytest.raises(RpcError) as err:
            c.unary(WALLET + "GetUserSettings", w.GetUserSettingsRequest(userId="cap-mode"), [])
        assert err.value.code == "unauthenticated"


# Low-balance alerts -------------------------------------------------------------------------------------


def test_low_balance_crossings_are_recorded_once_each(module_server, client, usage) -> None:
    user = "low-balance"
    settings(client, user, lowBalanceThreshold="5")
    credit(client, user, "10")
    client("Debit", w.DebitRequest(userId=user, amount="4", idempotencyKey=key()))  # available 6
    assert alerts_of(module_server, user) == []
    client("Debit", w.DebitRequest(userId=user, amount="2", idempotencyKey=key()))  # 4: crosses
    client("Debit", w.DebitRequest(userId=user, amount="1", idempotencyKey=key()))  # 3: already below
    [first] = alerts_of(module_server, user)
    assert (first.kind, first.threshold, first.balance, first.available, first.delivered_at) == (
        "balance.low",
        5,
        4,
        4,
        None,
    )
    credit(client, user, "10")  # 13
    hold = client(
        "CreateReservation", w.CreateReservationRequest(userId=user, amount="9", idempotencyKey=key())
    )
    assert [a.available for a in alerts_of(module_server, user)] == [4, 4]  # a hold crosses too
    client("CancelReservation", w.ReservationIdRequest(reservationId=hold.id))  # back to 13
    usage(user, 6)  # 7
    usage(user, 3)  # 4: a usage event crosses
    assert [(a.balance, a.available) for a in alerts_of(module_server, user)] == [(4, 4), (13, 4), (4, 4)]
    usage(user, 10)  # -6: still below, no new alert
    assert len(alerts_of(module_server, user)) == 3
    assert_invariants(module_server)


def test_expiry_that_crosses_the_threshold_is_recorded(module_server, client) -> None:
    user = "low-expiry"
    settings(client, user, lowBalanceThreshold="1")
    credit(client, user, "3", expires_in=2)
    wait_for(lambda: balance(client, user).balance == "0", "the grant to expire")
    [alert] = alerts_of(module_server, user)
    assert (alert.balance, alert.available) == (0, 0)


# Concurrency --------------------------------------------------------------------------------------------


def test_concurrent_debits_usage_and_cap_keep_every_invariant(module_server) -> None:
    """Debits, holds and usage events from many clients at once on a user with expiring credit and a cap:
    available never goes below zero through a debit or hold, the cap is never passed by one, and the
    ledger, the lots and the spend counter agree exactly."""
    server, user = module_server, "concurrent-lots"
    auth = bearer(server.live_key)
    with GrpcClient(server.grpc_target) as c:
        c.unary(
            WALLET + "Credit",
            w.CreditRequest(
                userId=user, amount="30", idempotencyKey=key(), expiresAt=int(time.time()) + 3600
            ),
            auth,
        )
        c.unary(WALLET + "Credit", w.CreditRequest(userId=user, amount="60", idempotencyKey=key()), auth)
        c.unary(WALLET + "UpdateUserSettings", w.UpdateUserSettingsRequest(userId=user, spendCap="70"), auth)

    def attempt(i: int) -> tuple[str, Decimal]:
        with GrpcClient(server.grpc_target) as cc:
            try:
                if i % 3 == 0:
                    cc.unary(
                        REGISTER,
                        ev.RegisterEventRequest(
                            type=ev.BASIC_USAGE,
                            userId=user,
                            idempotencyKey=key(),
                            basicUsage=ev.BasicUsage(amount=1),
                        ),
                        auth,
                    )
                    return "usage", Decimal(1)
                if i % 3 == 1:
                    cc.unary(
                        WALLET + "Debit",
                        w.DebitRequest(userId=user, amount="1.25", idempotencyKey=key()),
                        auth,
                    )
                    return "debit", Decimal("1.25")
                cc.unary(
                    WALLET + "CreateReservation",
                    w.CreateReservationRequest(userId=user, amount="0.5", idempotencyKey=key()),
                    auth,
                )
                return "hold", Decimal("0.5")
            except RpcError as e:
                assert e.code == "failed_precondition", e
                return "refused", Decimal(0)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(attempt, range(150)))
    spent = {kind: sum(a for k, a in results if k == kind) for kind in ("usage", "debit", "hold")}
    assert any(k == "refused" for k, _ in results)
    assert spent["usage"] == 50  # never refused
    assert spent["debit"] + spent["hold"] <= 70  # each was checked against spend + holds <= 70
    with GrpcClient(server.grpc_target) as c:
        final = c.unary(WALLET + "GetBalance", w.GetBalanceRequest(userId=user), auth)
        limits = c.unary(WALLET + "GetUserSettings", w.GetUserSettingsRequest(userId=user), auth)
    assert Decimal(final.balance) == 90 - spent["usage"] - spent["debit"]
    assert Decimal(final.held) == spent["hold"]
    assert Decimal(limits.spent) == spent["usage"] + spent["debit"]
    assert remaining(server, user) == [max(Decimal(0), 30 - spent["usage"] - spent["debit"])]
    assert_invariants(server)


def test_amounts_are_rounded_once_so_the_balance_is_the_sum_of_entries(module_server, client) -> None:
    """Sub-micro-unit amounts are rounded half-even once, when written; the balance never drifts from the
    ledger however the halves fall (1000000.5 rounds to 1000000; 1 + 1000000.5 would round to 1000002)."""
    user = "rounding"
    client("Credit", w.CreditRequest(userId=user, amount="0.000001", idempotencyKey=key()))
    got = client("Credit", w.CreditRequest(userId=user, amount="1.0000005", idempotencyKey=key()))
    assert got.transaction.amount == "1" and got.balance.balance == "1.000001"
    debit = client("Debit", w.DebitRequest(userId=user, amount="0.0000015", idempotencyKey=key()))
    assert debit.transaction.amount == "-0.000002" and debit.balance.balance == "0.999999"
    limits = client("UpdateUserSettings", w.UpdateUserSettingsRequest(userId=user, spendCap="0.0000025"))
    assert limits.spendCap == "0.000002"
    assert_invariants(module_server)
