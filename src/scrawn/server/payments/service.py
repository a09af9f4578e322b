"""Checkouts and the payments they bring (DESIGN §4, §7; docs/payments.md).

A checkout charges what the user owes (the negative part of the ledger balance) rounded *up* to a whole
minor unit of the currency, or a requested top-up. The provider is called outside any database transaction
(an HTTP call must never hold SQLite's write lock): the checkout row is written first (``creating``), the
provider session is created under an idempotency key derived from the row, and the row is then opened.

Money moves only when a verified webhook says it moved: the amount actually paid is credited once per
provider payment, refunds are debited back by how much the refunded total grew, and each provider event is
stored once so a replay changes nothing."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError, NotFoundError, ValidationError
from scrawn.money import MoneyError, format_amount, parse_decimal
from scrawn.server.clock import now_ms
from scrawn.server.db.engine import Database
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import LedgerEntry, Posted
from scrawn.server.payments import config as configs
from scrawn.server.payments import repository
from scrawn.server.payments.providers import PROVIDERS, CheckoutRequest, WebhookFact
from scrawn.server.payments.types import CheckoutRecord, InboundWebhookEvent, PaymentConfig
from scrawn.server.pricing.currency import minor_per_major
from scrawn.server.projects import service as projects
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks.outbox import enqueue

log = logging.getLogger("scrawn.payments")
MAX_CHARGE = 99_999_999  # the largest single charge both providers accept, in minor units
OPEN = ("creating", "open")
CREATING_GRACE_MS = 60_000  # longer than a provider call can take (15 s timeout, two retries)


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context="Checkout validation failed")


def check_top_up(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = parse_decimal(text)
    except MoneyError as e:
        raise _fail("topUpAmount", str(e)) from None
    if amount <= 0:
        raise _fail("topUpAmount", "must be greater than 0")
    return amount


def to_charge(amount: Decimal, config: PaymentConfig, amount_unit: str) -> int:
    """Project amount → the provider's whole minor units, rounded up (the one checkout rounding rule)."""
    scale = config.minor_per_major if amount_unit == "major" else 1
    # amounts in ``minor`` for a zero-decimal currency are already whole currency units
    return int((amount * scale).to_integral_value(rounding=ROUND_CEILING))


def from_charge(charge: int, config_currency: str, amount_unit: str) -> Decimal:
    """The provider's minor units → the project's amount unit (exact)."""
    if amount_unit != "major":
        return Decimal(charge)
    return Decimal(charge) / minor_per_major(config_currency)


@dataclass(frozen=True)
class Checkout:
    id: str
    created: bool  # False: an open checkout for the same user and amount was returned
    replaced: tuple[tuple[str, str], ...]  # (provider, session id) of sessions this one replaced


async def open_checkout(
    db: Database,
    box: SecretBox,
    project_id: str,
    mode: str,
    user_id: str,
    *,
    top_up: Decimal | None,
    return_url: str | None,
    public_url: str,
) -> str:
    """``CreateCheckoutLink``: the checkout id whose ``/checkout/{id}`` link the caller gets."""
    async with db.write() as conn:
        checkout = await _reserve_checkout(conn, box, project_id, mode, user_id, top_up, return_url)
    if not checkout.created:
        return checkout.id
    async with db.read() as conn:
        config = await configs.require(conn, box, project_id, mode)
        row = await _get(conn, project_id, mode, checkout.id)
    provider = PROVIDERS[config.provider]
    request = CheckoutRequest(
        checkout.id, user_id, row.charge, row.return_url or f"{public_url}/checkout/{checkout.id}"
    )
    try:
        session = await provider.create_checkout(config, request, row.expires_at)
    except Exception:
        async with db.write() as conn:  # the next call starts afresh rather than returning a dead link
            await repository.update_checkout(conn, project_id, mode, checkout.id, status="error")
        raise
    async with db.write() as conn:
        opened = await repository.update_checkout(
            conn,
            project_id,
            mode,
            checkout.id,
            status="open",
            provider_session_id=session.session_id,
            provider_url=session.url,
            expect="creating",
        )
    # No orphaned provider sessions (where the provider can expire them): the ones this checkout replaced,
    # and this one if a concurrent call replaced it while the provider was answering.
    stale = [sid for name, sid in checkout.replaced if sid and name == config.provider]
    for session_id in stale if opened else [*stale, session.session_id]:
        await provider.expire_checkout(config, session_id)
    return checkout.id


async def _reserve_checkout(
    conn: AsyncConnection,
    box: SecretBox,
    project_id: str,
    mode: str,
    user_id: str,
    top_up: Decimal | None,
    return_url: str | None,
) -> Checkout:
    config = await configs.require(conn, box, project_id, mode)
    unit = (await projects.load(conn, project_id)).amount_unit
    view = await ledger.lock(conn, project_id, mode, user_id)  # one checkout decision at a time
    view = await ledger.settle_expired(conn, project_id, mode, view)  # credit past its expiry is gone
    if top_up is not None:
        purpose, amount = "top_up", top_up
    else:
        purpose, amount = "outstanding", max(-view.balance, Decimal(0))
        if amount == 0:
            raise FailedPreconditionError("nothing to pay", field="userId")
    charge = to_charge(amount, config, unit)
    if charge > MAX_CHARGE:
        too_much = f"is more than one charge may be ({MAX_CHARGE} {config.currency} minor units)"
        if top_up is not None:
            raise _fail("topUpAmount", too_much)
        raise FailedPreconditionError(f"amount: the outstanding {charge} {too_much}", field="amount")
    now = now_ms()
    replaced: list[tuple[str, str]] = []
    for row in await repository.checkouts_in(conn, project_id, mode, user_id, OPEN):
        same = (row.purpose, row.charge, row.currency, row.provider) == (
            purpose,
            charge,
            config.currency,
            config.provider,
        )
        # Still ``creating`` after a minute: its process died mid-call; replace it, never hand it out.
        alive = row.status == "open" or row.created_at > now - CREATING_GRACE_MS
        if same and alive and row.expires_at > now + 60_000 and row.return_url == return_url:
            return Checkout(row.id, False, ())
        await repository.update_checkout(
            conn, project_id, mode, row.id, status="replaced" if row.expires_at > now else "expired"
        )
        replaced.append((row.provider, row.provider_session_id or ""))
    checkout_id = str(uuid.uuid4())
    await repository.insert_checkout(
        conn,
        CheckoutRecord(
            project_id=project_id,
            mode=mode,
            id=checkout_id,
            user_id=user_id,
            purpose=purpose,
            amount=amount,
            charge=charge,
            currency=config.currency,
            provider=config.provider,
            provider_session_id=None,
            provider_url=None,
            provider_payment_id=None,
            status="creating",
            paid_charge=None,
            refunded_charge=0,
            return_url=return_url,
            expires_at=now + config.checkout_ttl * 1000,
            created_at=now,
            updated_at=now,
        ),
    )
    return Checkout(checkout_id, True, tuple(replaced))


async def _get(conn: AsyncConnection, project_id: str, mode: str, checkout_id: str) -> CheckoutRecord:
    row = await repository.get_checkout(conn, project_id, mode, checkout_id)
    if row is None:
        raise NotFoundError(f"checkout {checkout_id} not found", field="checkoutId")
    return row


async def find_checkout(conn: AsyncConnection, checkout_id: str) -> CheckoutRecord | None:
    """A checkout by its id alone (the public link and webhooks do not name the project)."""
    try:
        uuid.UUID(checkout_id)
    except ValueError:
        return None
    return await repository.checkout_by_id(conn, checkout_id)


async def find_by_payment(conn: AsyncConnection, provider: str, payment_id: str) -> CheckoutRecord | None:
    return await repository.checkout_by_payment(conn, provider, payment_id)


# Webhooks ---------------------------------------------------------------------------------------------------


async def apply_webhook(
    conn: AsyncConnection, config: PaymentConfig, row: CheckoutRecord, fact: WebhookFact
) -> str:
    """Apply a verified provider event to the checkout ``row`` (locked by the caller's write transaction).
    Returns the outcome; ``duplicate`` when this provider event was applied before."""
    project_id, mode = row.project_id, row.mode
    event = InboundWebhookEvent(
        project_id, config.provider, fact.event_id, mode, row.id, fact.type, fact.kind
    )
    if not await repository.record_inbound(conn, event):
        return "duplicate"
    row = await _get(conn, project_id, mode, row.id)  # as it is now, after any concurrent twin committed
    if fact.currency and fact.currency != row.currency:
        log.warning("checkout %s: provider reported %s, expected %s", row.id, fact.currency, row.currency)
    unit = (await projects.load(conn, project_id)).amount_unit
    if fact.kind == "paid":
        return await _paid(conn, config, row, fact, unit)
    if fact.kind == "refunded":
        return await _refunded(conn, config, row, fact, unit)
    if fact.kind == "failed" and row.status in OPEN:
        await repository.update_checkout(conn, project_id, mode, row.id, status="failed")
        await _notify(conn, "payment.failed", row, config, charge=row.charge, amount=row.amount)
        return "failed"
    if fact.kind == "expired" and row.status in OPEN:
        await repository.update_checkout(conn, project_id, mode, row.id, status="expired")
        return "expired"
    return "ignored"


async def _paid(
    conn: AsyncConnection, config: PaymentConfig, row: CheckoutRecord, fact: WebhookFact, unit: str
) -> str:
    assert fact.amount is not None
    payment_id = fact.payment_id or fact.event_id
    credited = from_charge(fact.amount, row.currency, unit)
    posted = await _post(
        conn,
        row,
        "payment" if row.purpose == "outstanding" else "top_up",
        credited,
        key=f"payment:{config.provider}:{payment_id}",  # one credit per provider payment
        description=f"{config.provider} checkout {row.id}",
    )
    if posted.duplicate:
        return "duplicate"
    await repository.update_checkout(
        conn,
        row.project_id,
        row.mode,
        row.id,
        status="paid",
        paid_charge=(row.paid_charge or 0) + fact.amount,
        provider_payment_id=payment_id,
    )
    await _notify(conn, "payment.succeeded", row, config, charge=fact.amount, amount=credited, posted=posted)
    return "paid"


async def _refunded(
    conn: AsyncConnection, config: PaymentConfig, row: CheckoutRecord, fact: WebhookFact, unit: str
) -> str:
    assert fact.amount is not None
    grown = fact.amount - row.refunded_charge  # refund totals only grow; an older event changes nothing
    if grown <= 0:
        return "ignored"
    taken = from_charge(grown, row.currency, unit)
    posted = await _post(
        conn,
        row,
        "refund",
        -taken,
        key=f"refund:{config.provider}:{row.id}:{fact.amount}",
        description=f"{config.provider} refund of checkout {row.id}",
    )
    fully = row.paid_charge is not None and fact.amount >= row.paid_charge
    await repository.update_checkout(
        conn,
        row.project_id,
        row.mode,
        row.id,
        refunded_charge=fact.amount,
        status="refunded" if fully else None,
    )
    await _notify(
        conn,
        "payment.refunded",
        row,
        config,
        charge=grown,
        amount=taken,
        posted=posted,
        refundedTotal=fact.amount,
    )
    return "refunded"


async def _post(
    conn: AsyncConnection, row: CheckoutRecord, kind: str, amount: Decimal, *, key: str, description: str
) -> Posted:
    """The checkout's money on its user's balance, once per ``key``. Never refused: a payment is money in,
    and a refund is money returned, after which what it paid for is owed again."""
    entry = LedgerEntry(
        row.project_id, row.mode, row.user_id, kind, amount, idempotency_key=key, description=description
    )
    return await ledger.post_keyed(conn, entry, require_available=False)


async def _notify(
    conn: AsyncConnection,
    type_: str,
    row: CheckoutRecord,
    config: PaymentConfig,
    *,
    charge: int,
    amount: Decimal,
    posted: Posted | None = None,
    **extra: Any,
) -> None:
    """Queue the ``type_`` webhook of the checkout; with the balance and transaction a posting left."""
    data: dict[str, Any] = {
        "checkoutId": row.id,
        "userId": row.user_id,
        "purpose": row.purpose,
        "amount": format_amount(amount),
        "charge": charge,
        "currency": row.currency,
        "provider": config.provider,
        **extra,
    }
    if posted is not None:
        data |= {"balance": format_amount(posted.balance.balance), "transactionId": posted.entry.id}
    await enqueue(conn, row.project_id, row.mode, type_, data)
