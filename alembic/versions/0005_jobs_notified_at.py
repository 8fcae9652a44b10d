"""jobs.notified_at: when the job's job_completed event reached the bus. A job committed as
finished by a process killed before it published is announced later by the reconciler.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("notified_at", sa.DateTime(), nullable=True))
    # jobs finished before this revision are not announced again
    op.execute(
        "UPDATE jobs SET notified_at = finished_at "
        "WHERE status IN ('succeeded', 'failed', 'cancelled')"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("notified_at")
