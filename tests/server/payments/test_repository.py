"""``payments/repository.py`` against both databases: configurations, checkouts and the provider events
stored once, as the typed values of ``payments/types.py``."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from scrawn.server.clock import now_ms
from scrawn.server.payments import repository
from scrawn.server.payments.types import CheckoutRecord, InboundWebhookEvent, PaymentConfig
from tests.server.fresh import Fresh


def config(project_id: str, mode: str = "live", **changes: object) -> PaymentConfig:
    base = PaymentConfig(
        project_id=project_id,
        mode=mode,
        provider="stripe",
        api_key="sealed-key",
        api_key_hint="1234",
        store_id=None,
        variant_id=None,
        product_name="Usage",
        currency="USD",
        return_url=None,
        webhook_secret="sealed-secret",
        api_base="http://127.0.0.1:9/",
        checkout_ttl=3600,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def checkout(
    project_id: str, checkout_id: str, user_id: str, created_at: int, **changes: object
) -> CheckoutRecord:
    base = CheckoutRecord(
        project_id=project_id,
        mode="live",
        id=checkout_id,
        user_id=user_id,
        purpose="top_up",
        amount=Decimal("12.345678"),
        charge=1235,
        currency="USD",
        provider="stripe",
        provider_session_id=None,
        provider_url=None,
        provider_payment_id=None,
        status="creating",
        paid_charge=None,
        refunded_charge=0,
        return_url=None,
        expires_at=created_at + 3_600_000,
        created_at=created_at,
        updated_at=0,  # ignored: a new checkout's updated_at is its created_at
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_configs_are_saved_replaced_and_removed(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        assert not await repository.any_config(conn, project_id)
        await repository.save_config(conn, config(project_id))
        await repository.save_config(conn, config(project_id, "test", provider="lemonsqueezy", store_id="7"))
        await repository.save_config(conn, config(project_id, api_key_hint="9999", checkout_ttl=7200))
    async with db.read() as conn:
        assert await repository.any_config(conn, project_id)
        assert await repository.load_config(conn, project_id, "live") == config(
            project_id, api_key_hint="9999", checkout_ttl=7200
        )
        test = await repository.load_config(conn, project_id, "test")
        assert test is not None and (test.provider, test.store_id) == ("lemonsqueezy", "7")
        assert await repository.load_config(conn, "no-such-project", "live") is None
    async with db.write() as conn:
        assert await repository.delete_config(conn, project_id, "live")
        assert not await repository.delete_config(conn, project_id, "live")
        assert await repository.load_config(conn, project_id, "live") is None
        assert await repository.any_config(conn, project_id)  # test mode still has one


async def test_checkouts_are_found_listed_and_changed(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    now = now_ms()
    async with db.write() as conn:
        await repository.insert_checkout(conn, checkout(project_id, "c-old", "ann", now - 2000))
        await repository.insert_checkout(conn, checkout(project_id, "c-new", "ann", now - 1000))
        await repository.insert_checkout(conn, checkout(project_id, "c-bob", "bob", now, status="open"))
    async with db.read() as conn:
        got = await repository.get_checkout(conn, project_id, "live", "c-old")
        assert got == checkout(project_id, "c-old", "ann", now - 2000, updated_at=now - 2000)
        assert got.amount == Decimal("12.345678")  # exact through micro-units
        assert await repository.get_checkout(conn, project_id, "test", "c-old") is None
        assert await repository.checkout_by_id(conn, "c-bob") is not None
        assert await repository.checkout_by_id(conn, "nope") is None
        newest = await repository.list_checkouts(conn, project_id, "live", None, 10)
        assert [c.id for c in newest] == ["c-bob", "c-new", "c-old"]
        assert [c.id for c in await repository.list_checkouts(conn, project_id, "live", "ann", 1)] == [
            "c-new"
        ]
        creating = await repository.checkouts_in(conn, project_id, "live", "ann", ("creating", "open"))
        assert sorted(c.id for c in creating) == ["c-new", "c-old"]
        assert await repository.checkouts_in(conn, project_id, "live", "ann", ("paid",)) == []

    async with db.write() as conn:
        # only while the status is the expected one
        assert not await repository.update_checkout(
            conn, project_id, "live", "c-new", expect="open", status="x"
        )
        assert await repository.update_checkout(
            conn,
            project_id,
            "live",
            "c-new",
            expect="creating",
            status="open",
            provider_session_id="cs_1",
            provider_url="https://pay.example/cs_1",
        )
        await repository.update_checkout(
            conn, project_id, "live", "c-new", status="paid", paid_charge=1235, provider_payment_id="pi_1"
        )
        assert not await repository.update_checkout(conn, project_id, "live", "missing", status="paid")
    async with db.read() as conn:
        paid = await repository.checkout_by_payment(conn, "stripe", "pi_1")
        assert paid is not None and paid.id == "c-new"
        assert (paid.status, paid.provider_session_id, paid.paid_charge) == ("paid", "cs_1", 1235)
        assert paid.provider_url == "https://pay.example/cs_1"  # a field not given stays
        assert paid.updated_at >= now  # stamped by the repository
        assert await repository.checkout_by_payment(conn, "lemonsqueezy", "pi_1") is None


async def test_a_provider_event_is_recorded_once(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    event = InboundWebhookEvent(
        project_id, "stripe", "evt_1", "live", "c-1", "checkout.session.completed", "paid"
    )
    async with db.write() as conn:
        assert await repository.record_inbound(conn, event)
        assert not await repository.record_inbound(conn, event)
        assert not await repository.record_inbound(conn, replace(event, outcome="ignored"))  # same event id
        assert await repository.record_inbound(conn, replace(event, provider="lemonsqueezy"))
