"""``wallets/service.py`` on both databases: credits and debits once per key, the reservation life cycle
(hold, confirm, cancel, extend, expire: on the spot and by the sweeper), spend settings, transaction pages,
and inputs refused naming their field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InsufficientCreditsError,
    NotFoundError,
    ValidationError,
)
from scrawn.server.db.engine import now_ms
from scrawn.server.events.void_service import reversal_key
from scrawn.server.wallets import repository as repo
from scrawn.server.wallets import service as wallets
from scrawn.server.wallets.repository import Reservation
from tests.server.fresh import Fresh

D = Decimal
MODE = "live"


async def credit(
    conn: AsyncConnection, fresh: Fresh, amount: str, key: str, user: str = "u"
) -> wallets.Posting:
    return await wallets.credit(
        conn,
        fresh.project_id,
        MODE,
        user_id=user,
        amount=D(amount),
        kind="grant",
        key=key,
        description=None,
        expires_at=None,
    )


async def debit(conn: AsyncConnection, fresh: Fresh, amount: str, key: str) -> wallets.Posting:
    return await wallets.debit(
        conn, fresh.project_id, MODE, user_id="u", amount=D(amount), key=key, description="d"
    )


async def reserve(conn: AsyncConnection, fresh: Fresh, amount: str, key: str, ttl: int = 60) -> Reservation:
    return await wallets.create_reservation(
        conn, fresh.project_id, MODE, user_id="u", amount=D(amount), ttl=ttl, key=key, description=None
    )


async def balance(fresh: Fresh) -> tuple[Decimal, Decimal]:
    async with fresh.db.read() as conn:
        view = await wallets.read_balance(conn, fresh.project_id, MODE, "u")
    return view.balance, view.held


async def test_credit_and_debit_apply_once_per_key(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        entry, after, duplicate = await credit(conn, fresh, "10", "c1")
        assert (entry.amount, after.balance, duplicate) == (10, 10, False)
        again, after, duplicate = await credit(conn, fresh, "10", "c1")  # a retry
        assert (again.id, after.balance, duplicate) == (entry.id, 10, True)
        spent, after, duplicate = await debit(conn, fresh, "3.5", "d1")
        assert (spent.amount, spent.kind, after.balance, duplicate) == (D("-3.5"), "debit", D("6.5"), False)
    with pytest.raises(AlreadyExistsError) as reused:
        async with fresh.db.write() as conn:
            await credit(conn, fresh, "11", "c1")  # the same key for something else
    assert reused.value.field == "idempotencyKey"
    with pytest.raises(AlreadyExistsError):
        async with fresh.db.write() as conn:
            await debit(conn, fresh, "1", "c1")  # keys are shared by credits and debits
    with pytest.raises(InsufficientCreditsError) as short:
        async with fresh.db.write() as conn:
            await debit(conn, fresh, "7", "d2")
    assert short.value.requested_amount == 7
    assert await balance(fresh) == (D("6.5"), 0)  # refusals moved nothing


async def test_a_reservation_holds_then_confirms_what_was_used(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        await credit(conn, fresh, "10", "c")
        held = await reserve(conn, fresh, "4", "r")
        assert (held.status, held.amount) == ("active", 4)
        assert await reserve(conn, fresh, "4", "r") == held  # a retry answers the same reservation
    assert await balance(fresh) == (10, 4)
    with pytest.raises(InsufficientCreditsError):
        async with fresh.db.write() as conn:
            await reserve(conn, fresh, "7", "r2")  # only 6 is available beside the hold
    with pytest.raises(AlreadyExistsError):
        async with fresh.db.write() as conn:
            await reserve(conn, fresh, "5", "r")  # the key, for a different amount
    with pytest.raises(ValidationError) as too_much:
        async with fresh.db.write() as conn:
            await wallets.confirm_reservation(conn, fresh.project_id, MODE, held.id, D("4.000001"))
    assert too_much.value.field == "actualAmount"
    async with fresh.db.write() as conn:
        done, transaction_id, after = await wallets.confirm_reservation(
            conn, fresh.project_id, MODE, held.id, D("2.5")
        )
    assert (done.status, done.confirmed_amount, done.transaction_id) == (
        "confirmed",
        D("2.5"),
        transaction_id,
    )
    assert (after.balance, after.held) == (D("7.5"), 0)  # the used part taken, the rest let go
    async with fresh.db.write() as conn:
        retried = await wallets.confirm_reservation(conn, fresh.project_id, MODE, held.id, D("2.5"))
    assert retried[1] == transaction_id and retried[2].balance == D("7.5")  # nothing taken twice
    for attempt in (
        lambda conn: wallets.confirm_reservation(conn, fresh.project_id, MODE, held.id, D(1)),
        lambda conn: wallets.cancel_reservation(conn, fresh.project_id, MODE, held.id),
        lambda conn: wallets.extend_reservation(conn, fresh.project_id, MODE, held.id, 60),
    ):
        with pytest.raises(FailedPreconditionError) as refused:
            async with fresh.db.write() as conn:
                await attempt(conn)
        assert refused.value.field == "reservationId" and "confirmed" in refused.value.message


async def test_cancel_lets_go_of_the_hold_once_and_extend_moves_the_expiry(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        await credit(conn, fresh, "10", "c")
        held = await reserve(conn, fresh, "4", "r", ttl=60)
        before = now_ms()
        extended = await wallets.extend_reservation(conn, fresh.project_id, MODE, held.id, 3600)
    assert extended.expires_at >= before + 3_600_000 > held.expires_at
    async with fresh.db.write() as conn:
        cancelled = await wallets.cancel_reservation(conn, fresh.project_id, MODE, held.id)
        again = await wallets.cancel_reservation(conn, fresh.project_id, MODE, held.id)
    assert cancelled.status == again.status == "cancelled"
    assert await balance(fresh) == (10, 0)  # released once, not twice
    with pytest.raises(FailedPreconditionError, match="reservation is cancelled"):
        async with fresh.db.write() as conn:
            await wallets.confirm_reservation(conn, fresh.project_id, MODE, held.id, D(1))


async def test_expired_reservations_release_on_the_spot_and_by_the_sweeper(fresh: Fresh) -> None:
    await fresh.add_webhook_endpoint()
    async with fresh.db.write() as conn:
        await credit(conn, fresh, "10", "c")
        first = await reserve(conn, fresh, "3", "r1")
        second = await reserve(conn, fresh, "2", "r2")
        for row in (first, second):  # both were due a moment ago
            await repo.update_one(conn, fresh.project_id, MODE, row.id, expires_at=now_ms() - 1)
    with pytest.raises(FailedPreconditionError, match="reservation is expired"):
        async with fresh.db.write() as conn:
            await wallets.confirm_reservation(conn, fresh.project_id, MODE, first.id, D(1))
    # The refused confirm rolled back its expiry too: the sweeper releases both.
    async with fresh.db.write() as conn:
        assert await wallets.expire_due(conn) == 2
        assert await wallets.expire_due(conn) == 0
        gone = await wallets.get_reservation(conn, fresh.project_id, MODE, first.id)
    assert gone.status == "expired"
    assert await balance(fresh) == (10, 0)
    messages = await fresh.outbox()
    assert [t for t, _ in messages] == ["reservation.expired"] * 2
    assert f'"reservationId":"{first.id}"' in "".join(p for _, p in messages)


async def test_unknown_and_malformed_reservation_ids_name_the_field(fresh: Fresh) -> None:
    async with fresh.db.read() as conn:
        with pytest.raises(ValidationError) as bad:
            await wallets.get_reservation(conn, fresh.project_id, MODE, "not-a-uuid")
        assert bad.value.field == "reservationId"
        missing = str(uuid.uuid4())
        with pytest.raises(NotFoundError) as unknown:
            await wallets.get_reservation(conn, fresh.project_id, MODE, missing.upper())
        assert unknown.value.field == "reservationId" and missing in unknown.value.message  # normalised


async def test_settings_change_only_what_is_given_and_cap_remaining_counts_holds(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        await credit(conn, fresh, "100", "c")
        await debit(conn, fresh, "30", "d")
        await reserve(conn, fresh, "5", "r")
        capped = await wallets.update_settings(conn, fresh.project_id, MODE, "u", spend_cap=D(50))
        assert (capped.spend_cap, capped.low_balance_threshold, capped.cap_remaining) == (D(50), None, D(15))
        both = await wallets.update_settings(conn, fresh.project_id, MODE, "u", low_balance_threshold=D(20))
        assert (both.spend_cap, both.low_balance_threshold) == (D(50), D(20))  # the cap stayed
        uncapped = await wallets.update_settings(conn, fresh.project_id, MODE, "u", spend_cap=None)
        assert (uncapped.spend_cap, uncapped.cap_remaining, uncapped.low_balance_threshold) == (
            None,
            None,
            D(20),
        )
        over = await wallets.update_settings(conn, fresh.project_id, MODE, "u", spend_cap=D(10))
        assert over.cap_remaining == 0  # never negative
    async with fresh.db.read() as conn:
        read = await wallets.get_settings(conn, fresh.project_id, MODE, "u")
    assert (read.spend_cap, read.spent, read.held) == (D(10), D(30), D(5))


async def test_transactions_page_with_tokens_newest_first(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        for i in range(5):
            await credit(conn, fresh, str(i + 1), f"c{i}")
        await credit(conn, fresh, "9", "other", user="v")
    seen: list[Decimal] = []
    token = ""
    async with fresh.db.read() as conn:
        while True:
            page, token = await wallets.list_transactions(conn, fresh.project_id, MODE, "u", 2, token)
            seen += [e.amount for e in page]
            if not token:
                break
        with pytest.raises(ValidationError) as bad_token:
            await wallets.list_transactions(conn, fresh.project_id, MODE, "u", 2, "garbage")
        with pytest.raises(ValidationError) as bad_limit:
            await wallets.list_transactions(conn, fresh.project_id, MODE, "u", wallets.MAX_PAGE + 1, "")
    assert sorted(seen, reverse=True) == [5, 4, 3, 2, 1] and len(seen) == 5
    assert (bad_token.value.field, bad_limit.value.field) == ("pageToken", "limit")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", D(1)), ("0.0000015", D("0.000002")), ("0.0000025", D("0.000002")), ("12.50", D("12.5"))],
)
def test_amounts_are_rounded_once_half_even_to_a_micro_unit(text: str, expected: Decimal) -> None:
    assert wallets.check_amount("amount", text) == expected


@pytest.mark.parametrize(
    ("check", "field"),
    [
        (lambda: wallets.check_amount("amount", ""), "amount"),
        (lambda: wallets.check_amount("amount", "-1"), "amount"),
        (lambda: wallets.check_amount("amount", "0"), "amount"),
        (lambda: wallets.check_amount("amount", "0.0000004"), "amount"),
        (lambda: wallets.check_amount("amount", "1e400"), "amount"),
        (lambda: wallets.check_user(" "), "userId"),
        (lambda: wallets.check_user("u" * 257), "userId"),
        (lambda: wallets.check_key(""), "idempotencyKey"),
        (lambda: wallets.check_key(reversal_key(str(uuid.uuid4()))), "idempotencyKey"),
        (lambda: wallets.check_key("payment:stripe:pi_1"), "idempotencyKey"),
        (lambda: wallets.check_key("refund:lemonsqueezy:1:5"), "idempotencyKey"),
        (lambda: wallets.check_description("d" * 256), "description"),
        (lambda: wallets.check_ttl(86_401), "ttlSeconds"),
        (lambda: wallets.check_expires_at(1), "expiresAt"),
        (lambda: wallets.check_kind("debit"), "kind"),
        (lambda: wallets.check_setting("spendCap", "-1", allow_negative=False), "spendCap"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(check: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        check()
    assert err.value.field == field and err.value.message.startswith(f"Wallet validation failed: {field}: ")


def test_defaults_for_empty_inputs() -> None:
    assert wallets.check_ttl(0) == wallets.DEFAULT_TTL
    assert wallets.check_kind("") == "grant"
    assert wallets.check_description("") is None
    assert wallets.check_amount("amount", "0", allow_zero=True) == 0
    assert wallets.check_setting("lowBalanceThreshold", "", allow_negative=True) is None
    assert wallets.check_setting("lowBalanceThreshold", "-5", allow_negative=True) == D(-5)
