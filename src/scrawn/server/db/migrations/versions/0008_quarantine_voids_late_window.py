"""quarantined events, voided events and each project's late-event window"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    s.rows(
        "quarantined_events",
        s.idempotency(),
        s.string(32, "event_type"),
        s.user(),
        s.big("reported_at", "received_at"),
        s.text("input"),
        s.string(32, "reason_code"),
        s.string(64, "field"),
        s.text("reason"),
        s.integer("attempts", default="0"),
        s.big("last_attempt_at", "repriced_at", null=True),
        idempotent=True,
        indexes=[("ix_quarantined_events_waiting", ["project_id", "mode", "repriced_at", "received_at"])],
    )
    s.add_columns(
        "events",
        s.big("voided_at", null=True),
        s.ids("voided_by", null=True),
        s.string(255, "void_reason", null=True),
    )
    s.add_columns("projects", s.integer("late_window_days", default="35"))


def downgrade() -> None:
    s.drop_columns("projects", "late_window_days")
    s.drop_columns("events", "void_reason", "voided_by", "voided_at")
    s.drop("quarantined_events", "ix_quarantined_events_waiting")
