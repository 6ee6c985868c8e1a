"""desk inbox filter indexes: test data included, campaign, municipality, rare combinations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Measured on a million complaints (docs/performance.md, "Staff desk at a million complaints"):

- ``ix_complaint_inbox_any`` serves the inbox order with test data included (no ``is_test``
  condition): before it, PostgreSQL sorted every complaint for each page (1.5 s).
- ``ix_complaint_inbox_campaign`` (partial: most complaints come from no campaign) and
  ``ix_complaint_inbox_municipality`` serve the inbox order for one campaign or municipality, so
  a rare or unknown value is one short range scan instead of a walk of the whole inbox order
  (an unknown campaign: a sequential scan, 0.5 s).
- Single-column indexes on area, ground, perpetrator and language let rare combinations of
  filters be found by combining indexes (a bitmap AND) and sorting the few rows left.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

CAMPAIGN_PRESENT = 'campaign IS NOT NULL'
SINGLE_COLUMN = ('area', 'ground', 'perpetrator', 'language')


def upgrade() -> None:
    op.create_index('ix_complaint_inbox_any', 'complaint', ['priority', 'created_at', 'id'])
    op.create_index(
        'ix_complaint_inbox_campaign', 'complaint',
        ['campaign', 'is_test', 'priority', 'created_at', 'id'],
        postgresql_where=sa.text(CAMPAIGN_PRESENT), sqlite_where=sa.text(CAMPAIGN_PRESENT),
    )
    op.create_index(
        'ix_complaint_inbox_municipality', 'complaint',
        ['municipality', 'is_test', 'priority', 'created_at', 'id'],
    )
    for column in SINGLE_COLUMN:
        op.create_index(f'ix_complaint_{column}', 'complaint', [column])


def downgrade() -> None:
    for column in reversed(SINGLE_COLUMN):
        op.drop_index(f'ix_complaint_{column}', table_name='complaint')
    op.drop_index('ix_complaint_inbox_municipality', table_name='complaint')
    op.drop_index('ix_complaint_inbox_campaign', table_name='complaint')
    op.drop_index('ix_complaint_inbox_any', table_name='complaint')
