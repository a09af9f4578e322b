"""The pure rules of credit lots (ledger/rules.py): consumption order, expiry held back by holds, a credit
paying debt first; and a model run of random operations that keeps every invariant."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from scrawn.server.ledger.rules import (
    Lot,
    check_spend_cap,
    crossed_below,
    new_lot_remaining,
    period_of,
    period_text,
    plan_consumption,
    plan_expiry,
)

D = Decimal


def lot(name: str, remaining: str, expires_at: int) -> Lot:
    return Lot(id=name, user_id="u", remaining=D(remaining), expires_at=expires_at)


def test_consumption_is_soonest_expiring_first_ties_by_id() -> None:
    lots = [lot("c", "5", 300), lot("b", "5", 100), lot("a", "5", 100), lot("z", "0", 50)]
    assert [(x.id, a) for x, a in plan_consumption(lots, D("12"))] == [("a", 5), ("b", 5), ("c", 2)]
    assert [(x.id, a) for x, a in plan_consumption(lots, D("40"))] == [("a", 5), ("b", 5), ("c", 5)]
    assert plan_consumption(lots, D(0)) == []


def test_expiry_keeps_what_holds_need_and_never_takes_available_below_zero() -> None:
    lots = [lot("a", "8", 100), lot("b", "5", 200), lot("c", "5", 900)]
    # balance 20 (= 18 in lots + 2 permanent), held 6: available 14 at time 250 -> a 8, b 5 expire
    assert [(x.id, a) for x, a in plan_expiry(lots, D(20), D(6), 250)] == [("a", 8), ("b", 5)]
    # held 15: available 5 -> a expires 5 (3 stay for the holds), b is held back entirely
    assert [(x.id, a) for x, a in plan_expiry(lots, D(20), D(15), 250)] == [("a", 5), ("b", 0)]
    assert plan_expiry(lots, D(20), D(0), 99) == []  # nothing due yet
    assert [(x.id, a) for x, a in plan_expiry(lots, D(-3), D(0), 250)] == [("a", 0), ("b", 0)]


def test_a_new_credit_pays_debt_first() -> None:
    assert new_lot_remaining(D(10), balance_after=D(6), lots_total=D(0)) == 6  # owed 4
    assert new_lot_remaining(D(10), balance_after=D(-1), lots_total=D(0)) == 0  # owed 11
    assert new_lot_remaining(D(10), balance_after=D(25), lots_total=D(5)) == 10


def test_spend_cap_and_threshold_rules() -> None:
    check_spend_cap(None, D(10**9), D(0), D(1), 202611)
    check_spend_cap(D(10), D(6), D(3), D(1), 202611)
    try:
        check_spend_cap(D(10), D(6), D(3), D("1.000001"), 202611)
        raise AssertionError("should refuse")
    except Exception as e:
        assert "amount:" in str(e) and "spend cap 10" in str(e) and "2026-11" in str(e)
    assert crossed_below(D(5), D(5), D("4.999999")) and not crossed_below(D(5), D("4.9"), D(1))
    assert not crossed_below(None, D(9), D(-9)) and not crossed_below(D(5), D(6), D(5))
    assert period_text(period_of(1_767_225_599_999)) == "2025-12"  # 2025-12-31T23:59:59.999Z
    assert period_text(period_of(1_767_225_600_000)) == "2026-01"


# A model of one user's wallet driven by random operations -----------------------------------------------

amounts = st.integers(min_value=1, max_value=50).map(D)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), amounts, st.one_of(st.none(), st.integers(1, 20))),
        st.tuples(st.just("debit"), amounts, st.none()),
        st.tuples(st.just("usage"), amounts, st.none()),
        st.tuples(st.just("hold"), amounts, st.none()),
        st.tuples(st.just("capture"), st.integers(0, 100).map(D), st.none()),
        st.tuples(st.just("release"), st.just(D(0)), st.none()),
        st.tuples(st.just("tick"), st.just(D(0)), st.integers(1, 10)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_random_operations_keep_the_invariants(ops: list[tuple[str, Decimal, int | None]]) -> None:
    now, balance, credited, spent, expired = 0, D(0), D(0), D(0), D(0)
    lots: list[Lot] = []
    holds: list[Decimal] = []

    def expire() -> None:
        nonlocal balance, expired, lots
        plan = {x.id: a for x, a in plan_expiry(lots, balance, sum(holds, D(0)), now)}
        lots = [replace(x, remaining=x.remaining - plan.get(x.id, D(0))) for x in lots]
        gone = sum(plan.values(), D(0))
        balance, expired = balance - gone, expired + gone
        if gone:
            assert balance - sum(holds, D(0)) >= 0  # expiry never takes available below zero

    def consume(amount: Decimal) -> None:
        nonlocal lots
        plan = {x.id: a for x, a in plan_consumption(lots, amount)}
        lots = [replace(x, remaining=x.remaining - plan.get(x.id, D(0))) for x in lots]

    for i, (kind, amount, extra) in enumerate(ops):
        expire()  # what every operation does first (and the sweepers between operations)
        available = balance - sum(holds, D(0))
        if kind == "credit":
            if extra is not None:
                total = sum((x.remaining for x in lots), D(0))
                lots.append(
                    lot(f"l{i:03}", str(new_lot_remaining(amount, balance + amount, total)), now + extra)
                )
            balance, credited = balance + amount, credited + amount
        elif (kind == "debit" and amount <= available) or kind == "usage":
            consume(amount)
            balance, spent = balance - amount, spent + amount
        elif kind == "hold" and amount <= available:
            holds.append(amount)
        elif kind == "capture" and holds:
            actual = min(amount, holds.pop(0))
            consume(actual)
            balance, spent = balance - actual, spent + actual
        elif kind == "release" and holds:
            holds.pop()
        elif kind == "tick":
            now += extra or 0
        expire()
        in_lots = sum((x.remaining for x in lots), D(0))
        assert all(x.remaining >= 0 for x in lots)
        assert 0 <= in_lots <= max(D(0), balance)
        assert balance == credited - spent - expired
        if kind in ("debit", "hold"):
            assert balance - sum(holds, D(0)) >= 0 or available < 0
    holds.clear()
    now += 100
    expire()
    assert all(x.remaining == 0 for x in lots)  # with no holds left, all credit past its time is gone
