"""message: the outbox and recipient indexes leave inbound messages out

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Inbound messages have no status and no recipient key, yet each one took an entry (and so a
page written at commit) in ``ix_message_outbox`` and ``ix_message_recipient``. Every query that
uses these indexes names a status or a recipient key, which implies the partial condition on
SQLite and PostgreSQL alike, so the delivery worker's plans keep them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_message_outbox': (['status', 'next_attempt_at'], 'status IS NOT NULL'),
    'ix_message_recipient': (['recipient_key', 'status'], 'recipient_key IS NOT NULL'),
}


def upgrade() -> None:
    for name, (columns, where) in INDEXES.items():
        op.drop_index(name, table_name='message')
        op.create_index(
            name, 'message', columns,
            postgresql_where=sa.text(where), sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    for name, (columns, _) in INDEXES.items():
        op.drop_index(name, table_name='message')
        op.create_index(name, 'message', columns)
