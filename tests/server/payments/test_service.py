"""The payments service on both databases against a local HTTP server speaking Stripe's API: a checkout is
opened (and handed out again while it is alive), a verified payment is credited once however often its event
comes, a refund takes back what the refunded total grew by, and each reports through the outbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest

from scrawn.errors import FailedPreconditionError
from scrawn.server.db.engine import Database
from scrawn.server.ledger import service as ledger
from scrawn.server.payments import config as configs
from scrawn.server.payments import repository
from scrawn.server.payments import service as payments
from scrawn.server.payments.providers import PROVIDERS
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, messages
from tests.conftest import SECRET
from tests.payments.fake_providers import FakeStripe
from tests.server.fresh import Fresh

STRIPE_KEY, STRIPE_SECRET = "sk_test_" + "s" * 24, "whsec_stripe_test_secret"
MODE = "test"
BOX = SecretBox(SECRET)


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with FakeStripe(STRIPE_KEY, STRIPE_SECRET) as fake:
        yield fake


@pytest.fixture
async def configured(fresh: Fresh, stripe: FakeStripe) -> Fresh:
    """The test mode configured with the local Stripe, and a webhook endpoint (so the outbox fills)."""
    async with fresh.db.write() as conn:
        values = {"provider": "stripe", "apiKey": STRIPE_KEY, "webhookSecret": STRIPE_SECRET}
        await configs.save(conn, BOX, fresh.project_id, MODE, {**values, "apiBase": stripe.base_url})
        await endpoints.put(conn, BOX, fresh.project_id, MODE, "http://127.0.0.1:9/hooks")
    return fresh


async def open_top_up(db: Database, project_id: str, user_id: str, amount: str) -> str:
    return await payments.open_checkout(
        db, BOX, project_id, MODE, user_id, top_up=Decimal(amount), return_url=None, public_url="http://x"
    )


async def deliver(db: Database, project_id: str, body: bytes, headers: dict[str, str]) -> str:
    """What ``/webhooks/stripe`` does once the checkout is known: verify, interpret, apply."""
    payload = json.loads(body)
    provider = PROVIDERS["stripe"]
    async with db.read() as conn:
        config = await configs.require(conn, BOX, project_id, MODE)
        row = await payments.find_checkout(conn, provider.checkout_id(payload) or "")
    assert row is not None
    provider.verify(config, body, {k.lower(): v for k, v in headers.items()})
    async with db.write() as conn:
        return await payments.apply_webhook(conn, config, row, provider.interpret(payload))


async def test_the_configuration_is_sealed_at_rest(configured: Fresh) -> None:
    db, project_id = configured.db, configured.project_id
    async with db.read() as conn:
        stored = await repository.load_config(conn, project_id, MODE)
        opened = await configs.load(conn, BOX, project_id, MODE)
    assert stored is not None and opened is not None
    assert STRIPE_KEY not in stored.api_key and STRIPE_SECRET not in stored.webhook_secret
    assert (opened.api_key, opened.webhook_secret, opened.api_key_hint) == (
        STRIPE_KEY,
        STRIPE_SECRET,
        "ssss",
    )
    assert STRIPE_KEY not in json.dumps(opened.public())


async def test_a_checkout_is_opened_once_and_handed_out_again(configured: Fresh, stripe: FakeStripe) -> None:
    db, project_id = configured.db, configured.project_id
    first = await open_top_up(db, project_id, "ann", "2500")
    assert await open_top_up(db, project_id, "ann", "2500") == first  # alive, same amount: the same link
    async with db.read() as conn:
        row = await payments.find_checkout(conn, first)
    assert row is not None and row.status == "open" and row.charge == 2500
    assert row.provider_session_id in stripe.sessions
    assert len(stripe.api_requests("POST", "/v1/checkout/sessions")) == 1

    second = await open_top_up(db, project_id, "ann", "3000")  # another amount replaces it
    async with db.read() as conn:
        old, new = await payments.find_checkout(conn, first), await payments.find_checkout(conn, second)
    assert old is not None and new is not None
    assert (old.status, new.status) == ("replaced", "open")
    assert stripe.sessions[str(old.provider_session_id)]["status"] == "expired"  # no orphaned session

    with pytest.raises(FailedPreconditionError, match="nothing to pay"):
        await payments.open_checkout(
            db, BOX, project_id, MODE, "bob", top_up=None, return_url=None, public_url="http://x"
        )
    async with db.read() as conn:
        assert await payments.find_checkout(conn, "not-a-uuid") is None


async def test_a_payment_is_credited_once_and_a_refund_taken_back(
    configured: Fresh, stripe: FakeStripe
) -> None:
    db, project_id = configured.db, configured.project_id
    checkout_id = await open_top_up(db, project_id, "ann", "2500")
    async with db.read() as conn:
        row = await payments.find_checkout(conn, checkout_id)
    assert row is not None and row.provider_session_id is not None
    body, headers = stripe.checkout_completed(row.provider_session_id)
    assert await deliver(db, project_id, body, headers) == "paid"
    assert await deliver(db, project_id, body, headers) == "duplicate"  # the same event again
    again, again_headers = stripe.checkout_completed(row.provider_session_id)  # another event, same payment
    assert await deliver(db, project_id, again, again_headers) == "duplicate"
    async with db.read() as conn:
        assert (await ledger.read(conn, project_id, MODE, "ann")).balance == Decimal(2500)
        paid = await payments.find_checkout(conn, checkout_id)
        assert paid is not None and (paid.status, paid.paid_charge) == ("paid", 2500)
        assert paid.provider_payment_id is not None
        assert await payments.find_by_payment(conn, "stripe", paid.provider_payment_id) == paid

    part, part_headers = stripe.charge_refunded(row.provider_session_id, amount_refunded=1000)
    assert await deliver(db, project_id, part, part_headers) == "refunded"
    older, older_headers = stripe.charge_refunded(row.provider_session_id, amount_refunded=500)
    assert await deliver(db, project_id, older, older_headers) == "ignored"  # totals only grow
    full, full_headers = stripe.charge_refunded(row.provider_session_id, amount_refunded=2500)
    assert await deliver(db, project_id, full, full_headers) == "refunded"
    async with db.read() as conn:
        assert (await ledger.read(conn, project_id, MODE, "ann")).balance == Decimal(0)
        refunded = await payments.find_checkout(conn, checkout_id)
        assert refunded is not None and (refunded.status, refunded.refunded_charge) == ("refunded", 2500)
        queued = await messages.list_messages(conn, project_id, MODE, None, 50)
    assert sorted(m.type for m in queued) == ["payment.refunded", "payment.refunded", "payment.succeeded"]
    succeeded = next(json.loads(m.payload) for m in queued if m.type == "payment.succeeded")
    assert succeeded["data"] | {"transactionId": "-"} == {
        "mode": MODE,
        "checkoutId": checkout_id,
        "userId": "ann",
        "purpose": "top_up",
        "amount": "2500",
        "charge": 2500,
        "currency": "USD",
        "provider": "stripe",
        "balance": "2500",
        "transactionId": "-",
    }


async def test_an_expired_session_closes_the_checkout(configured: Fresh, stripe: FakeStripe) -> None:
    db, project_id = configured.db, configured.project_id
    checkout_id = await open_top_up(db, project_id, "ann", "100")
    async with db.read() as conn:
        row = await payments.find_checkout(conn, checkout_id)
    assert row is not None and row.provider_session_id is not None
    body, headers = stripe.session_expired(row.provider_session_id)
    assert await deliver(db, project_id, body, headers) == "expired"
    assert await deliver(db, project_id, body, headers) == "duplicate"
    async with db.read() as conn:
        closed = await payments.find_checkout(conn, checkout_id)
        assert closed is not None and closed.status == "expired"
        assert (await ledger.read(conn, project_id, MODE, "ann")).balance == 0
