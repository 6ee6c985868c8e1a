"""desk inbox indexes: priority, then age, with and without the common filters

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23

The inbox pages by (priority, created_at, id) with keyset pagination; these indexes make each
page one range scan, also with a status filter and for legal staff (legal_support = true).
"""

from __future__ import annotations

from alembic import op


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.create_index('ix_complaint_inbox', ['is_test', 'priority', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_complaint_inbox_legal', ['legal_support', 'is_test', 'priority', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_complaint_inbox_status', ['status', 'is_test', 'priority', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.drop_index('ix_complaint_inbox_status')
        batch_op.drop_index('ix_complaint_inbox_legal')
        batch_op.drop_index('ix_complaint_inbox')
