"""webhooks outbox and complaint priority

Revision ID: 0002
Revises: 0003
Create Date: 2026-11-23

Numbered 0002 but applied after 0003 (the staff desk's migration was written first against 0001;
chaining here keeps a single head without touching it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_endpoint',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secrets', sa.LargeBinary(), nullable=False),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('legal_only', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=200), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('webhook_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('complaint_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('legal', sa.Boolean(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('webhook_event', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_event_complaint', ['complaint_id'], unique=False)

    op.create_table('webhook_delivery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('endpoint_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_by', sa.String(length=64), nullable=True),
    sa.Column('last_status', sa.SmallInteger(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoint.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['webhook_event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'endpoint_id', name='uq_webhook_delivery')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_delivery_due', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_webhook_delivery_endpoint', ['endpoint_id', 'status'], unique=False)

    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.String(length=2), server_default='P4', nullable=False))
        batch_op.add_column(sa.Column('priority_reasons', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('institutions', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))

    # Complaints stored before priorities existed: "danger now" is a plain column, so those
    # become P1; the rest stay P4 and say they were not assessed (descriptions are encrypted,
    # so words cannot be checked here).
    complaint = sa.table(
        'complaint',
        sa.column('urgent', sa.Boolean()),
        sa.column('priority', sa.String()),
        sa.column('priority_reasons', sa.JSON()),
    )
    op.execute(
        complaint.update()
        .where(complaint.c.urgent == sa.true())
        .values(
            priority='P1',
            priority_reasons=[{
                'code': 'danger_now', 'priority': 'P1', 'source': 'answer',
                'text': 'The person said they are in danger now.',
            }],
        )
    )
    op.execute(
        complaint.update()
        .where(complaint.c.urgent == sa.false())
        .values(
            priority_reasons=[{
                'code': 'not_assessed', 'priority': 'P4', 'source': 'migration',
                'text': 'Submitted before priorities were assessed; review by hand.',
            }],
        )
    )
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.alter_column('priority_reasons', server_default=None)
        batch_op.alter_column('institutions', server_default=None)



def downgrade() -> None:
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.drop_column('institutions')
        batch_op.drop_column('priority_reasons')
        batch_op.drop_column('priority')

    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_delivery_endpoint')
        batch_op.drop_index('ix_webhook_delivery_due')

    op.drop_table('webhook_delivery')
    with op.batch_alter_table('webhook_event', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_event_complaint')

    op.drop_table('webhook_event')
    op.drop_table('webhook_endpoint')
