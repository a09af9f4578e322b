"""payment configuration, checkouts, inbound provider webhooks and the outbound webhook outbox"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    s.user_rows(
        "checkouts",
        s.string(12, "purpose"),
        s.big("amount", "charge"),
        s.string(3, "currency"),
        s.string(16, "provider"),
        s.string(255, "provider_session_id", null=True),
        s.text("provider_url", null=True),
        s.string(255, "provider_payment_id", null=True),
        s.string(12, "status"),
        s.big("paid_charge", null=True),
        s.big("refunded_charge", default="0"),
        s.text("return_url", null=True),
        s.big("expires_at", "created_at", "updated_at"),
        indexes=[
            ("ix_checkouts_id", ["id"]),
            ("ix_checkouts_payment", ["provider_payment_id"]),
            ("ix_checkouts_user", ["project_id", "mode", "user_id", "status"]),
        ],
    )
    s.create(
        "inbound_webhooks",
        s.ids("project_id"),
        s.string(16, "provider"),
        s.string(255, "event_id"),
        s.string(4, "mode"),
        s.ids("checkout_id", null=True),
        s.string(64, "type"),
        s.string(32, "outcome"),
        s.big("received_at"),
        key=("project_id", "provider", "event_id"),
    )
    s.create(
        "payment_configs",
        s.scope(id_length=None),
        s.string(16, "provider"),
        s.text("api_key"),
        s.string(16, "api_key_hint"),
        s.string(64, "store_id", "variant_id", null=True),
        s.string(255, "product_name", null=True),
        s.string(3, "currency"),
        s.text("return_url", null=True),
        s.text("webhook_secret"),
        s.string(255, "api_base", null=True),
        s.integer("checkout_ttl"),
        s.big("updated_at"),
        key=("project_id", "mode"),
    )
    s.create(
        "webhook_attempts",
        s.scope(id_length=None),
        s.string(40, "message_id"),
        s.integer("attempt"),
        s.text("url"),
        s.integer("status_code", null=True),
        s.text("error", null=True),
        s.integer("duration_ms"),
        s.big("attempted_at"),
        key=("project_id", "mode", "message_id", "attempt"),
    )
    s.create(
        "webhook_endpoints",
        s.scope(id_length=None),
        s.text("url", "secret", "signing_key"),
        s.big("created_at", "updated_at"),
        key=("project_id", "mode"),
    )
    s.rows(
        "webhook_messages",
        s.string(32, "type"),
        s.text("payload"),
        s.string(12, "status"),
        s.integer("attempts", default="0"),
        s.big("next_attempt_at", "delivered_at", null=True),
        s.text("last_error", null=True),
        s.big("created_at"),
        id_length=40,
        indexes=[
            ("ix_webhook_messages_created", ["project_id", "mode", "created_at"]),
            ("ix_webhook_messages_due", ["next_attempt_at"]),
        ],
    )


def downgrade() -> None:
    s.drop("webhook_messages", "ix_webhook_messages_due", "ix_webhook_messages_created")
    s.drop("webhook_endpoints")
    s.drop("webhook_attempts")
    s.drop("payment_configs")
    s.drop("inbound_webhooks")
    s.drop("checkouts", "ix_checkouts_user", "ix_checkouts_payment", "ix_checkouts_id")
