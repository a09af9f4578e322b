"""who changed the price catalog: changed_by on tags, expressions, event prices and model price overrides

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("tags", "expressions", "event_prices", "model_price_overrides")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("changed_by", sa.String(length=36), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("changed_by")
