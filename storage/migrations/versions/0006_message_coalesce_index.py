"""message: a partial index on the coalesce key of pending "got it" replies

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Every SMS that continues a description drops the pending "got it" of the part before it
(``IntakeStore.drop_pending``). Without an index that delete walked every queued reply through
``ix_message_outbox``: in the dialog benchmark, whose outbox is never drained, such a message
cost 0.7 ms against 0.45 ms for any other. Only those replies carry a key, so the index is
partial and costs nothing on the other inserts. It holds the status too: with two equal
columns to match, SQLite picks it before the outbox index, which a never-drained outbox (the
benchmark's) would make long.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

KEY_PRESENT = 'coalesce_key IS NOT NULL'


def upgrade() -> None:
    op.create_index(
        'ix_message_coalesce', 'message', ['coalesce_key', 'status'],
        postgresql_where=sa.text(KEY_PRESENT), sqlite_where=sa.text(KEY_PRESENT),
    )


def downgrade() -> None:
    op.drop_index('ix_message_coalesce', table_name='message')
