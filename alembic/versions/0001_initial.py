"""Initial schema: SPEC's metrics and events, models, jobs, api_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("revision", sa.String(64)),
        sa.Column("pipeline_type", sa.Text()),
        sa.Column("library_name", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("tags", sa.JSON()),
        sa.Column("parameters", sa.Integer()),
        sa.Column("gated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("model_id", sa.Text(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("throughput", sa.Float(), nullable=False),
        sa.Column("latency", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Float(), nullable=False),
        sa.Column("gpu_memory_mb", sa.Float()),
        sa.Column("cost_per_inference", sa.Float(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_metrics_model_time", "metrics", ["model_id", "timestamp"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("model_id", sa.Text(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_events_model_time", "events", ["model_id", "timestamp"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("task_name", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_id", sa.Text()),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("cache_key", sa.Text()),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(64)),
        sa.Column("result", sa.JSON()),
        sa.Column("error", sa.JSON()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("enqueues", sa.Integer(), nullable=False),
        sa.Column("worker", sa.Text()),
        sa.Column("api_key_id", sa.Integer()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("enqueued_at", sa.DateTime()),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("lease_expires_at", sa.DateTime()),
    )
    op.create_index("idx_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index("idx_jobs_kind_created", "jobs", ["kind", "created_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime()),
        sa.Column("last_used_at", sa.DateTime()),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("idx_jobs_kind_created", "jobs")
    op.drop_index("idx_jobs_status_created", "jobs")
    op.drop_table("jobs")
    op.drop_index("idx_events_model_time", "events")
    op.drop_table("events")
    op.drop_index("idx_metrics_model_time", "metrics")
    op.drop_table("metrics")
    op.drop_table("models")
