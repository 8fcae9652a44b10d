"""Alembic migrations and SPEC's tables on SQLite and PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from modelport.cli import db_upgrade
from modelport.core.db import make_engine
from tests.fixtures.services import PG_URL, postgres_reachable

SPEC_METRICS = {
    "id", "timestamp", "model_id", "batch_size", "throughput", "latency", "memory_mb",
    "gpu_memory_mb", "cost_per_inference",
}  # fmt: skip
SPEC_EVENTS = {"id", "timestamp", "model_id", "event_type", "description", "severity"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    name = f"modelport_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_head_creates_spec_tables_and_indexes(database_url):
    db_upgrade(database_url)
    engine = make_engine(database_url)
    insp = inspect(engine)
    assert {"models", "metrics", "events", "jobs", "api_keys"} <= set(insp.get_table_names())
    # SPEC's columns, plus additive ones
    additive = {"source", "job_id", "device", "optimization_level"}
    assert {c["name"] for c in insp.get_columns("metrics")} - additive == SPEC_METRICS
    assert {c["name"] for c in insp.get_columns("events")} == SPEC_EVENTS
    nullable = {c["name"]: c["nullable"] for c in insp.get_columns("metrics")}
    assert nullable["gpu_memory_mb"] is True and nullable["throughput"] is False
    idx = {i["name"]: i["column_names"] for i in insp.get_indexes("metrics")}
    assert idx["idx_metrics_model_time"] == ["model_id", "timestamp"]
    idx = {i["name"]: i["column_names"] for i in insp.get_indexes("events")}
    assert idx["idx_events_model_time"] == ["model_id", "timestamp"]
    fks = insp.get_foreign_keys("metrics")
    assert fks[0]["referred_table"] == "models" and fks[0]["constrained_columns"] == ["model_id"]

    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (id, gated, created_at, updated_at) "
                "VALUES ('org/m', false, :t, :t)"
            ),
            {"t": now},
        )
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO metrics (timestamp, model_id, batch_size, throughput, latency,"
                    " memory_mb, cost_per_inference) VALUES (:t, 'org/m', 8, 10, 0.1, 100, 1e-6)"
                ),
                {"t": now - timedelta(minutes=i)},
            )
        ids = [r[0] for r in conn.execute(text("SELECT id FROM metrics ORDER BY id"))]
    assert ids == sorted(set(ids)) and len(ids) == 3
    # the foreign key to models holds on both backends
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (timestamp, model_id, event_type, description, severity) "
                "VALUES (:t, 'nobody/none', 'x', 'y', 'info')"
            ),
            {"t": now},
        )
    engine.dispose()


def test_upgrade_is_idempotent(database_url):
    db_upgrade(database_url)
    db_upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0006"
    engine.dispose()
