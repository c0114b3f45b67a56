"""the on-call watcher: leader lease, incidents, silences

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('watch_leader',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('holder', sa.String(length=80), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('watch_incidents',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('object_key', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=True),
    sa.Column('posted_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('channel', sa.String(length=64), nullable=True),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('fingerprint', sa.String(length=32), nullable=True),
    sa.Column('incident_json', sa.Text(), nullable=False),
    sa.Column('waited_json', sa.Text(), nullable=False),
    sa.Column('proposal_id', sa.String(length=40), nullable=True),
    sa.Column('rolled_up', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('watch_incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_watch_incidents_object_key'), ['object_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_incidents_posted_at'), ['posted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_watch_incidents_status'), ['status'], unique=False)
    op.create_table('watch_silences',
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('until', sa.DateTime(), nullable=True),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('target')
    )


def downgrade() -> None:
    op.drop_table('watch_silences')
    with op.batch_alter_table('watch_incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_watch_incidents_status'))
        batch_op.drop_index(batch_op.f('ix_watch_incidents_posted_at'))
        batch_op.drop_index(batch_op.f('ix_watch_incidents_object_key'))
    op.drop_table('watch_incidents')
    op.drop_table('watch_leader')
