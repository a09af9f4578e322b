"""wallets and reservations"""

from __future__ import annotations

from alembic import op

from scrawn.server.db.migrations import shapes as s

revision = "0003"
down_revision = "0002"
LEDGER_KEY = "uq_ledger_entries_project_id_mode_idempotency_key"


def upgrade() -> None:
    s.user_rows(
        "reservations",
        s.big("amount"),
        s.string(10, "status"),
        s.idempotency(),
        s.string(255, "description", null=True),
        s.big("expires_at", "created_at"),
        s.big("confirmed_amount", null=True),
        s.ids("transaction_id", null=True),
        idempotent=True,
        indexes=[
            ("ix_reservations_active", ["status", "expires_at"]),
            ("ix_reservations_user", ["project_id", "mode", "user_id", "created_at"]),
        ],
    )
    s.add_columns("balances", s.big("held", default="0"))
    # One batch: on SQLite the unique constraint rebuilds the table with the new columns in it.
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        for column in [
            *s.ids("reservation_id", null=True),
            *s.string(255, "idempotency_key", null=True),
            *s.string(64, "fingerprint", null=True),
            *s.string(255, "description", null=True),
        ]:
            batch_op.add_column(column)
        batch_op.create_unique_constraint(batch_op.f(LEDGER_KEY), ["project_id", "mode", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(LEDGER_KEY), type_="unique")
        for name in ("description", "fingerprint", "idempotency_key", "reservation_id"):
            batch_op.drop_column(name)
    s.drop_columns("balances", "held")
    s.drop("reservations", "ix_reservations_user", "ix_reservations_active")
