"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sms_keyword', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('sms_keyword')
    )
    op.create_table('contact',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('address', sa.LargeBinary(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('plain_letters', sa.Boolean(), nullable=False),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'address_hash', name='uq_contact_address')
    )
    op.create_table('worker_heartbeat',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('complaint',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('pin_hash', sa.String(length=64), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('area', sa.String(length=32), nullable=False),
    sa.Column('ground', sa.String(length=32), nullable=False),
    sa.Column('ground_other', sa.LargeBinary(), nullable=True),
    sa.Column('perpetrator', sa.String(length=32), nullable=False),
    sa.Column('municipality', sa.String(length=32), nullable=False),
    sa.Column('occurred', sa.String(length=16), nullable=False),
    sa.Column('description', sa.LargeBinary(), nullable=True),
    sa.Column('stakes', sa.JSON(), nullable=False),
    sa.Column('contact_preference', sa.String(length=8), nullable=False),
    sa.Column('contact_phone', sa.LargeBinary(), nullable=True),
    sa.Column('legal_support', sa.Boolean(), nullable=False),
    sa.Column('sharing', sa.String(length=16), nullable=False),
    sa.Column('campaign', sa.String(length=64), nullable=True),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.create_index('ix_complaint_status_created', ['status', 'created_at'], unique=False)

    op.create_table('conversation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('answers', sa.LargeBinary(), nullable=False),
    sa.Column('flow', sa.JSON(), nullable=False),
    sa.Column('campaign', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contact_id')
    )
    op.create_table('attachment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('complaint_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.LargeBinary(), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('path', sa.String(length=255), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fetch_attempts', sa.Integer(), nullable=False),
    sa.Column('fetch_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('complaint_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('channel_message_id', sa.String(length=64), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('chat_message_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('to_address', sa.LargeBinary(), nullable=True),
    sa.Column('recipient_key', sa.String(length=64), nullable=True),
    sa.Column('coalesce_key', sa.String(length=64), nullable=True),
    sa.Column('reply_markup', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ephemeral', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['complaint_id'], ['complaint.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'direction', 'channel_message_id', name='uq_message_channel_id')
    )
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index('ix_message_contact', ['contact_id', 'id'], unique=False)
        batch_op.create_index('ix_message_outbox', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_message_recipient', ['recipient_key', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_recipient')
        batch_op.drop_index('ix_message_outbox')
        batch_op.drop_index('ix_message_contact')

    op.drop_table('message')
    op.drop_table('attachment')
    op.drop_table('conversation')
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.drop_index('ix_complaint_status_created')

    op.drop_table('complaint')
    op.drop_table('worker_heartbeat')
    op.drop_table('contact')
    op.drop_table('campaign')
