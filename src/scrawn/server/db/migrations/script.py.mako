"""${message}"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scrawn.server.db.migrations import shapes as s
${imports if imports else ""}

# Alembic reads these two; branch_labels and depends_on default to None when absent.
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
% if branch_labels:
branch_labels = ${repr(branch_labels)}
% endif
% if depends_on:
depends_on = ${repr(depends_on)}
% endif


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
