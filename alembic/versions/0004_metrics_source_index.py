"""Index metrics by (model_id, source, timestamp): the monitoring baseline lookup and the
deployment-only statistics filter on source.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("idx_metrics_model_source_time", "metrics", ["model_id", "source", "timestamp"])


def downgrade() -> None:
    op.drop_index("idx_metrics_model_source_time", "metrics")
