"""the usage rollup (filled from the events stored so far), each project's time zone, checkouts by creation"""

from __future__ import annotations

from alembic import op

from scrawn.server.db.migrations import shapes as s

revision = "0010"
down_revision = "0009"

# The rollup of the events stored so far, as ingest and void keep it from now on: one row per project,
# mode and quarter hour of ingest time, voided events left out, debits split in 32-bit halves (db/sums.py).
BACKFILL = """
INSERT INTO usage_rollup (project_id, mode, slot_start, events, debit_hi, debit_lo)
SELECT project_id, mode, ingested_at - ingested_at % 900000,
       COUNT(*), SUM(debit >> 32), SUM(debit & 4294967295)
FROM events
WHERE voided_at IS NULL
GROUP BY project_id, mode, ingested_at - ingested_at % 900000
"""


def upgrade() -> None:
    s.create(
        "usage_rollup",
        s.scope(id_length=None),
        s.big("slot_start", "events", "debit_hi", "debit_lo"),
        key=("project_id", "mode", "slot_start"),
    )
    op.execute(BACKFILL)
    s.add_columns("projects", s.string(64, "time_zone", default="UTC"))
    with op.batch_alter_table("checkouts", schema=None) as batch_op:
        batch_op.create_index("ix_checkouts_created", ["project_id", "mode", "created_at"], unique=False)


def downgrade() -> None:
    s.drop_indexes("checkouts", "ix_checkouts_created")
    s.drop_columns("projects", "time_zone")
    s.drop("usage_rollup")
