"""metrics.optimization_level: the configuration a benchmark measured or a deployment serves,
so a deployment is compared with a benchmark of the same device and level.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("metrics", sa.Column("optimization_level", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("optimization_level")
