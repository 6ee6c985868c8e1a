"""complaint: an index for the repeat-pattern count made at every submission

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

``similar_earlier`` (bot/notify.py) counts the earlier real complaints against the same kind
of perpetrator in the same municipality within the window, for the priority of each new
report. Without this index the count walked every complaint against that kind of perpetrator
(``ix_complaint_perpetrator``) and read each row: about 0.75 ms of a 3 ms submission in the
dialog benchmark, growing with the table. The index holds every column the count tests, so it
reads a short range of the index alone.
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = ['perpetrator', 'municipality', 'created_at', 'is_test', 'status']


def upgrade() -> None:
    op.create_index('ix_complaint_pattern', 'complaint', COLUMNS)


def downgrade() -> None:
    op.drop_index('ix_complaint_pattern', table_name='complaint')
