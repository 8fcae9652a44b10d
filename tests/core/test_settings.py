"""Settings: SPEC's variables, validated at start with messages naming the variable."""

import os
import subprocess
import sys

import pytest

from modelport.core.settings import DEFAULT_SECRET_KEY, Settings


def start_with(**env) -> subprocess.CompletedProcess:
    code = "from modelport.core.settings import load_settings; load_settings()"
    clean = {k: v for k, v in os.environ.items() if k not in env}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_MEMORY", "8 gigs"),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("ENABLE_GPU", "perhaps"),
        ("METRICS_RETENTION_DAYS", "-1"),
        ("MAX_CPU_CORES", "0"),
        ("REDIS_URL", "http://localhost:6379"),
        ("DB_PATH", "not a url"),
        ("FLASK_ENV", "staging"),
    ],
)
def test_malformed_value_stops_the_process_naming_the_variable(name, value):
    result = start_with(**{name: value})
    assert result.returncode == 2
    assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_the_default_secret_key():
    result = start_with(FLASK_ENV="production", SECRET_KEY=DEFAULT_SECRET_KEY)
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr
    ok = start_with(FLASK_ENV="production", SECRET_KEY="x" * 40)
    assert ok.returncode == 0, ok.stderr


def test_spec_variables_are_read(monkeypatch):
    for key, value in {
        "PORT": "8080",
        "HOST": "127.0.0.1",
        "ALLOWED_ORIGINS": "http://a.example, https://b.example/",
        "MAX_MEMORY": "512Mi",
        "MAX_CPU_CORES": "2.5",
        "ENABLE_GPU": "false",
        "METRICS_RETENTION_DAYS": "7",
        "ALERT_WEBHOOK_URL": "https://hooks.example/x",
        "REDIS_URL": "redis://cache.internal:6380/5",
    }.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.PORT == 8080 and s.HOST == "127.0.0.1"
    assert s.ALLOWED_ORIGINS == ["http://a.example", "https://b.example"]
    assert s.max_memory_bytes == 512 * 2**20
    assert s.MAX_CPU_CORES == 2.5 and s.ENABLE_GPU is False
    assert s.METRICS_RETENTION_DAYS == 7
    assert s.ALERT_WEBHOOK_URL == "https://hooks.example/x"
    # broker, result backend and cache get their own database numbers
    assert s.redis_db_url(0) == "redis://cache.internal:6380/0"
    assert s.redis_db_url(2) == "redis://cache.internal:6380/2"


def test_time_limits_must_nest(monkeypatch):
    monkeypatch.setenv("TASK_TIME_LIMIT", "100")
    monkeypatch.setenv("BROKER_VISIBILITY_TIMEOUT", "50")
    with pytest.raises(ValueError, match="VISIBILITY"):
        Settings()
