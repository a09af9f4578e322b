"""All tables. Every primary and unique key begins with ``project_id`` (DESIGN §1) so the schema can
be distributed by project. Timestamps are integer Unix milliseconds: identical on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.schema import SchemaItem

from scrawn.server.db.types import Micros

PAYMENTS_ONLY = "kind = 'payment'"  # the partial index's condition; a query must state it literally
KEYED = "idempotency_key IS NOT NULL"  # the ledger key index's condition (implied by ``idempotency_key = …``)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _user() -> Column[Any]:
    return Column("user_id", String(256), nullable=False)


def _idempotency() -> list[Column[Any]]:
    """The client's idempotency key and the fingerprint of what it was first used for."""
    return [
        Column("idempotency_key", String(255), nullable=False),
        Column("fingerprint", String(64), nullable=False),
    ]


def _per_mode(name: str, *items: SchemaItem, key: tuple[str, ...] = (), idempotent: bool = False) -> Table:
    """A project's rows in one mode: project_id and mode, then ``items``; keyed by (project_id, mode, *key).
    With ``idempotent``, an idempotency key is unique per project and mode."""
    unique = [UniqueConstraint("project_id", "mode", "idempotency_key")] if idempotent else []
    return Table(
        name,
        metadata,
        Column("project_id", String(36), nullable=False),
        Column("mode", String(4), nullable=False),
        *items,
        PrimaryKeyConstraint("project_id", "mode", *key),
        *unique,
    )


def _rows(name: str, *items: SchemaItem, id_length: int = 36, idempotent: bool = False) -> Table:
    """A project's per-mode rows, keyed by (project_id, mode, id); ``items`` follow the id."""
    row_id = Column("id", String(id_length), nullable=False)
    return _per_mode(name, row_id, *items, key=("id",), idempotent=idempotent)


def _versioned(name: str, key: Column[Any], value: Column[Any]) -> Table:
    """A versioned catalog entry (tags, expressions, event prices): one row per version of ``key``; a
    deletion is a version with ``deleted`` set."""
    return Table(
        name,
        metadata,
        Column("project_id", String(36), nullable=False),
        key,
        Column("version", Integer, nullable=False),
        value,
        Column("deleted", Boolean, nullable=False, default=False),
        Column("created_at", BigInteger, nullable=False),
        Column("changed_by", String(36)),  # who made this version: the API key id, or "cli"; NULL before 0009
        PrimaryKeyConstraint("project_id", key.name, "version"),
    )


projects = Table(
    "projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("currency", String(3), nullable=False, server_default="USD"),
    Column("amount_unit", String(8), nullable=False, server_default="minor"),
    Column("created_at", BigInteger, nullable=False),
    # Project currency minor units per US cent, exact decimal text (docs/usage.md); NULL = 1 (USD).
    Column("usd_rate", String(64)),
    # Events reported more than this many days ago are refused (docs/events.md#late-events).
    Column("late_window_days", Integer, nullable=False, server_default="35"),
    # IANA name the dashboard's and portal's charts bucket by (docs/dashboard.md#time-zone).
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("project_id", String(36), nullable=False),
    Column("id", String(36), nullable=False),
    # HMAC-SHA256 of the key under SCRAWN_SECRET; looked up by this index (not unique: see docs/keys.md).
    Column("key_hash", String(64), nullable=False),
    Column("display", String(24), nullable=False),  # e.g. "scrn_live_Ab3d…"
    Column("role", String(8), nullable=False),  # dash | live | test
    Column("name", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
    PrimaryKeyConstraint("project_id", "id"),
    Index("ix_api_keys_key_hash", "key_hash"),
)

tags = _versioned("tags", Column("key", String(128), nullable=False), Column("price", Micros, nullable=False))

expressions = _versioned(
    "expressions", Column("name", String(128), nullable=False), Column("text", Text, nullable=False)
)

event_prices = _versioned(
    "event_prices",
    Column("event_type", String(128), nullable=False),  # a typed event's type, e.g. "document.processed"
    Column("expression", Text, nullable=False),  # may use quantity()
)

events = _rows(
    "events",
    *_idempotency(),  # the fingerprint: a hash of the request's content, for duplicates
    Column("event_type", String(32), nullable=False),  # BASIC_USAGE | AI_TOKEN_USAGE | TYPED
    _user(),
    Column("basic_usage_type", String(32)),
    Column("reported_at", BigInteger, nullable=False),  # Unix seconds
    Column("ingested_at", BigInteger, nullable=False),  # Unix ms
    Column("debit", Micros, nullable=False),  # total, minor units
    Column("model", String(255)),
    Column("provider", String(255)),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("input_cache_tokens", Integer),
    Column("output_cache_tokens", Integer),
    Column("input_debit", Micros),
    Column("output_debit", Micros),
    Column("input_cache_debit", Micros),
    Column("output_cache_debit", Micros),
    Column("metadata", Text),
    Column("name", String(128)),  # TYPED events: their type, e.g. "document.processed"
    Column("quantity", String(64)),  # TYPED events: exact decimal text
    Column("product_ref", String(255)),
    Column("pricing", Text, nullable=False),  # JSON: what priced it (expressions, tag versions)
    # A voided event (docs/events.md#voiding) keeps its row and idempotency key; a reversing ledger entry
    # credits its debit back, and queries leave it out unless asked.
    Column("voided_at", BigInteger),  # Unix ms
    Column("voided_by", String(36)),  # the API key id
    Column("void_reason", String(255)),
    Index("ix_events_user", "project_id", "mode", "user_id", "ingested_at"),
    Index("ix_events_ingested", "project_id", "mode", "ingested_at"),
    idempotent=True,
)

# Billed usage per project, mode and quarter hour of ingest time (UTC), written in the transaction that
# stores or voids the events (docs/dashboard.md#the-usage-rollup). Voided events are left out, as the
# events' own sums leave them out. The debits are split as ``db/sums.py`` splits a sum, so no total of
# BIGINT micro-units can overflow a column.
usage_rollup = _per_mode(
    "usage_rollup",
    Column("slot_start", BigInteger, nullable=False),  # Unix ms, a multiple of 15 minutes
    Column("events", BigInteger, nullable=False),
    Column("debit_hi", BigInteger, nullable=False),  # Σ debit micro-units >> 32
    Column("debit_lo", BigInteger, nullable=False),  # Σ debit micro-units & 0xFFFFFFFF
    key=("slot_start",),
)

# Well-formed events the configuration could not price (docs/pricing-safety.md), under the id each will be
# stored under once priced.
quarantined_events = _rows(
    "quarantined_events",
    *_idempotency(),
    Column("event_type", String(32), nullable=False),  # BASIC_USAGE | AI_TOKEN_USAGE | TYPED
    _user(),
    Column("reported_at", BigInteger, nullable=False),  # Unix seconds, kept when repriced
    Column("received_at", BigInteger, nullable=False),  # Unix ms
    Column("input", Text, nullable=False),  # JSON: the validated event, enough to price it again
    Column("reason_code", String(32), nullable=False),  # tag_not_found | expression_not_found | ...
    Column("field", String(64), nullable=False),  # e.g. basicUsage.tag
    Column("reason", Text, nullable=False),  # e.g. Tag not found: X
    Column("attempts", Integer, nullable=False, server_default="0"),  # reprices tried that failed
    Column("last_attempt_at", BigInteger),
    Column("repriced_at", BigInteger),  # NULL while it waits
    Index("ix_quarantined_events_waiting", "project_id", "mode", "repriced_at", "received_at"),
    idempotent=True,
)

ledger_entries = _rows(
    "ledger_entries",
    _user(),
    Column(
        "kind", String(32), nullable=False
    ),  # usage | payment | top_up | grant | adjustment | refund | debit | capture | expiry | void
    Column("amount", Micros, nullable=False),  # signed: usage is negative
    Column("event_id", String(36)),
    Column("reservation_id", String(36)),
    Column("idempotency_key", String(255)),  # wallet credits and debits; NULL for usage (the event has one)
    Column("fingerprint", String(64)),
    Column("description", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_ledger_entries_user", "project_id", "mode", "user_id", "created_at"),
    # Payments over time (the dashboard's Overview) without reading the usage entries: partial, so the
    # entries ingest writes never enter it.
    Index(
        "ix_ledger_entries_payments",
        "project_id",
        "mode",
        "created_at",
        sqlite_where=text(PAYMENTS_ONLY),
        postgresql_where=text(PAYMENTS_ONLY),
    ),
    # Keys are unique where there is one: the usage entries ingest writes (no key) stay out of the index.
    Index(
        "ix_ledger_entries_key",
        "project_id",
        "mode",
        "idempotency_key",
        unique=True,
        sqlite_where=text(KEYED),
        postgresql_where=text(KEYED),
    ),
)

reservations = _rows(
    "reservations",
    _user(),
    Column("amount", Micros, nullable=False),  # held while active
    Column("status", String(10), nullable=False),  # active | confirmed | cancelled | expired
    *_idempotency(),
    Column("description", String(255)),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("confirmed_amount", Micros),
    Column("transaction_id", String(36)),
    Index("ix_reservations_active", "status", "expires_at"),
    Index("ix_reservations_user", "project_id", "mode", "user_id", "created_at"),
    idempotent=True,
)

model_price_overrides = Table(  # per-project LLM prices (docs/usage.md): custom models, negotiated rates
    "model_price_overrides",
    metadata,
    Column("project_id", String(36), nullable=False),
    Column("id", String(36), nullable=False),
    Column("model", String(255), nullable=False),  # lower-case model name, as requests name it
    Column("provider", String(64), nullable=False),  # lower-case; "" = every provider
    Column("effective_from", BigInteger, nullable=False),  # Unix ms: prices usage at or after it
    # Rates in minor units (US cents) per million tokens / per minute of audio; NULL = not priced.
    Column("input_mtok", Micros),
    Column("output_mtok", Micros),
    Column("cache_read_mtok", Micros),
    Column("cache_write_mtok", Micros),
    Column("audio_minute", Micros),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),  # soft delete: records priced by it keep their cost and its id
    Column("changed_by", String(36)),  # who made the latest change (creation or delete): key id or "cli"
    PrimaryKeyConstraint("project_id", "id"),
    Index("ix_model_price_overrides_model", "project_id", "model", "effective_from"),
)

usage_records = _rows(  # RecordUsage (docs/usage.md): priced LLM usage, customer or system context
    "usage_records",
    *_idempotency(),
    Column("user_id", String(256), nullable=False),  # "" for system usage with no user
    Column("context", String(8), nullable=False),  # customer | system
    Column("transaction_id", String(36)),  # customer: the reservation's capture entry
    Column("reservation_id", String(36)),
    Column("model", String(255), nullable=False),  # lower-case, as recorded
    Column("provider", String(64), nullable=False),  # the provider that priced it
    Column("usage_type", String(16), nullable=False),  # text | audio_stt | audio_tts | embedding
    Column("input_tokens", BigInteger, nullable=False),  # all input tokens, cached ones included
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("audio_ms", BigInteger, nullable=False),  # audio duration in milliseconds
    Column("input_cost", Micros, nullable=False),
    Column("output_cost", Micros, nullable=False),
    Column("cached_cost", Micros, nullable=False),
    Column("cache_write_cost", Micros, nullable=False),
    Column("audio_cost", Micros, nullable=False),
    Column("cost", Micros, nullable=False),  # Σ the parts, minor units
    Column("pricing", Text, nullable=False),  # JSON: the price entry (book version or override id)
    Column("description", String(255)),
    Column("occurred_at", BigInteger, nullable=False),  # Unix ms
    Column("created_at", BigInteger, nullable=False),
    Index("ix_usage_records_time", "project_id", "mode", "occurred_at"),
    Index("ix_usage_records_user", "project_id", "mode", "user_id", "occurred_at"),
    Index("ix_usage_records_transaction", "project_id", "mode", "transaction_id"),
    idempotent=True,
)

balances = _per_mode(
    "balances",
    _user(),
    Column("balance", Micros, nullable=False),  # Σ ledger_entries.amount, kept in the same transaction
    Column("held", Micros, nullable=False, server_default="0"),  # Σ active reservations
    Column("updated_at", BigInteger, nullable=False),
    # Spend controls (docs/wallets.md), on the row every debit already locks and updates:
    Column("spend_cap", Micros),  # per calendar month (UTC); NULL = none
    Column("spend_period", Integer),  # the month ``spent`` counts, as yyyymm
    Column("spent", Micros, nullable=False, server_default="0"),  # usage + debit + capture in that month
    Column("low_balance_threshold", Micros),  # record a balance.low alert when available crosses below
    key=("user_id",),
)

# Credits with an expiry, consumed soonest-expiring first (docs/wallets.md); the id is the credit's ledger
# entry id.
credit_lots = _rows(
    "credit_lots",
    _user(),
    Column("amount", Micros, nullable=False),  # credited
    Column("remaining", Micros, nullable=False),  # not yet consumed nor expired
    Column("expired", Micros, nullable=False, server_default="0"),  # Σ its expiry entries
    Column("expiry_count", Integer, nullable=False, server_default="0"),  # its expiry entries so far
    Column("expires_at", BigInteger, nullable=False),  # Unix ms
    Column("due_at", BigInteger),  # when a sweeper should look at it next; NULL = nothing left to expire
    Column("created_at", BigInteger, nullable=False),
    Index("ix_credit_lots_user", "project_id", "mode", "user_id", "expires_at"),
    Index("ix_credit_lots_due", "due_at"),
)

balance_alerts = _rows(  # balance.low crossings, recorded in the transaction that crossed (for webhooks)
    "balance_alerts",
    _user(),
    Column("kind", String(32), nullable=False),  # balance.low
    Column("threshold", Micros, nullable=False),
    Column("balance", Micros, nullable=False),  # after the crossing
    Column("available", Micros, nullable=False),  # after the crossing (< threshold)
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),  # set by the webhook outbox (payments issue)
    Index("ix_balance_alerts_pending", "delivered_at", "created_at"),
    Index("ix_balance_alerts_user", "project_id", "mode", "user_id", "created_at"),
)

# Payments (docs/payments.md) --------------------------------------------------------------------------------

payment_configs = _per_mode(  # one checkout provider per project and mode
    "payment_configs",
    Column("provider", String(16), nullable=False),  # lemonsqueezy | stripe
    Column("api_key", Text, nullable=False),  # sealed (server/secretbox.py): never returned in full
    Column("api_key_hint", String(16), nullable=False),  # the key's last 4 characters
    Column("store_id", String(64)),  # Lemon Squeezy
    Column("variant_id", String(64)),  # Lemon Squeezy
    Column("product_name", String(255)),  # Stripe: the line item's name
    Column("currency", String(3), nullable=False),
    Column("return_url", Text),
    Column("webhook_secret", Text, nullable=False),  # sealed: verifies the provider's inbound webhooks
    Column("api_base", String(255)),  # the provider's API address; NULL = its public one
    Column("checkout_ttl", Integer, nullable=False),  # seconds a checkout link stays open
    Column("updated_at", BigInteger, nullable=False),
)

checkouts = _rows(  # a checkout link: one provider session for one user and amount
    "checkouts",  # its id is random: /checkout/{id} is public
    _user(),
    Column("purpose", String(12), nullable=False),  # outstanding | top_up
    Column("amount", Micros, nullable=False),  # in the project's amount unit: what paying it all credits
    Column("charge", BigInteger, nullable=False),  # what the provider charges, in the currency's minor unit
    Column("currency", String(3), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("provider_session_id", String(255)),
    Column("provider_url", Text),
    Column("provider_payment_id", String(255)),  # Lemon Squeezy order / Stripe payment intent, once paid
    # creating | open | paid | failed | expired | replaced | refunded | error (the provider refused it)
    Column("status", String(12), nullable=False),
    Column("paid_charge", BigInteger),  # what the provider says was paid, currency minor units
    Column("refunded_charge", BigInteger, nullable=False, server_default="0"),
    Column("return_url", Text),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_checkouts_id", "id"),
    Index("ix_checkouts_user", "project_id", "mode", "user_id", "status"),
    Index("ix_checkouts_payment", "provider_payment_id"),
    Index("ix_checkouts_created", "project_id", "mode", "created_at"),  # the dashboard's pages
)

inbound_webhooks = Table(  # provider webhook events, stored once: a replay is a no-op
    "inbound_webhooks",
    metadata,
    Column("project_id", String(36), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("mode", String(4), nullable=False),
    Column("checkout_id", String(36)),
    Column("type", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),  # paid | refunded | failed | expired | ignored
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("project_id", "provider", "event_id"),
)

webhook_endpoints = _per_mode(  # where a project's outbound webhooks go, one per mode
    "webhook_endpoints",
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),  # sealed whsec_… (v1, HMAC-SHA256)
    Column("signing_key", Text, nullable=False),  # sealed whsk_… (v1a, Ed25519 private key)
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

webhook_messages = _rows(  # the outbound outbox: written in the transaction that changed the ledger
    "webhook_messages",  # its id, msg_…: the webhook-id every attempt carries
    Column("type", String(32), nullable=False),  # payment.succeeded | … | balance.low | reservation.expired
    Column("payload", Text, nullable=False),  # the exact JSON body sent
    Column("status", String(12), nullable=False),  # pending | delivered | failed (retries exhausted)
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger),  # Unix ms; NULL once delivered or given up
    Column("delivered_at", BigInteger),
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_webhook_messages_due", "next_attempt_at"),
    Index("ix_webhook_messages_created", "project_id", "mode", "created_at"),
    id_length=40,
)

webhook_attempts = _per_mode(  # the delivery log
    "webhook_attempts",
    Column("message_id", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("status_code", Integer),  # NULL: no HTTP answer (refused, timed out)
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    # The start of the endpoint's answer (its first 1,024 bytes as text); NULL: no answer, or before 0011.
    Column("response_body", Text),
    Column("attempted_at", BigInteger, nullable=False),
    key=("message_id", "attempt"),
)
