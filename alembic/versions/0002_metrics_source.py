"""Additive columns on metrics: where a row came from (benchmark or deployment) and its job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("source", sa.String(16)))
        batch.add_column(sa.Column("job_id", sa.String(36)))
        batch.add_column(sa.Column("device", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("device")
        batch.drop_column("job_id")
        batch.drop_column("source")
