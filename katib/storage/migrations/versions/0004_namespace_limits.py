"""A limit of concurrently running trials per namespace (fair sharing of a server)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('namespaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_running_trials', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('namespaces', schema=None) as batch_op:
        batch_op.drop_column('max_running_trials')
