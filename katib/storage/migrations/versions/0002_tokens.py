"""API tokens, archived experiments, indexes for keyset pages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=253), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tokens_namespace'), ['namespace'], unique=False)

    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('archived', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index('ix_experiments_namespace_id', ['namespace', 'id'], unique=False)

    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.create_index('ix_trials_experiment_id_id', ['experiment_id', 'id'], unique=False)
        batch_op.create_index(
            'ix_trials_experiment_objective', ['experiment_id', 'objective', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_experiment_objective')
        batch_op.drop_index('ix_trials_experiment_id_id')

    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index('ix_experiments_namespace_id')
        batch_op.drop_column('archived')

    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_namespace'))

    op.drop_table('tokens')
