"""per-user request window for the shared rate limit

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('user_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_requests_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_requests_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('user_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_requests_user_id'))
        batch_op.drop_index(batch_op.f('ix_user_requests_at'))

    op.drop_table('user_requests')
