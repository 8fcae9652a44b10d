"""Settings: SPEC's environment variables plus modelport's own, validated once at start.

A malformed value stops the process with a message naming the variable.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modelport.core.quantity import parse_memory

DEFAULT_SECRET_KEY = "dev-insecure-secret-key"  # noqa: S105 - refused in production


RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(value: str) -> tuple[int, int] | None:
    """ "60/minute" -> (60, 60); "off" -> None. Units: second, minute, hour, day."""
    text = value.strip().lower()
    if text == "off":
        return None
    match = re.fullmatch(r"(\d{1,9})\s*/\s*(second|minute|hour|day)s?", text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(
            'must be "N/unit" with N >= 1 and unit second, minute, hour or day '
            '(e.g. "120/minute"), or "off"'
        )
    return int(match.group(1)), RATE_UNITS[match.group(2)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", env_file=None)

    # Server (SPEC)
    FLASK_ENV: Literal["development", "production", "testing"] = "development"
    PORT: int = Field(5000, ge=1, le=65535)
    HOST: str = "0.0.0.0"  # noqa: S104 - SPEC's default; bind address is configurable
    # Database / Redis (SPEC)
    DB_PATH: str = "sqlite:///metrics.db"
    REDIS_URL: str = "redis://localhost:6379"
    # Security (SPEC)
    SECRET_KEY: str = DEFAULT_SECRET_KEY
    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    # Resource limits (SPEC)
    MAX_MEMORY: str = "8Gi"
    MAX_CPU_CORES: float = Field(4, gt=0, le=1024)
    ENABLE_GPU: bool = True
    # Monitoring (SPEC)
    METRICS_RETENTION_DAYS: int = Field(30, ge=1, le=3650)
    ALERT_WEBHOOK_URL: str | None = None

    # modelport additions
    # how long a statement waits for a locked SQLite database, or a connection to PostgreSQL,
    # before the API answers 503 (workers retry the job later instead of failing it)
    DB_TIMEOUT_SECONDS: float = Field(5.0, gt=0, le=300)
    REQUIRE_API_KEY: bool = False
    JOB_MAX_ATTEMPTS: int = Field(3, ge=1, le=20)
    JOB_LEASE_SECONDS: int = Field(60, ge=2, le=3600)
    JOB_REQUEUE_AFTER: int = Field(300, ge=1)
    TASK_SOFT_TIME_LIMIT: int = Field(1800, ge=1)
    TASK_TIME_LIMIT: int = Field(1900, ge=2)
    BROKER_VISIBILITY_TIMEOUT: int = Field(2400, ge=2)
    RESULT_EXPIRES_DAYS: int = Field(7, ge=1)
    RECONCILE_INTERVAL: float = Field(30.0, gt=0)
    MAX_WAIT_SECONDS: float = Field(60.0, ge=0, le=600)
    MAX_CONTENT_LENGTH: int = Field(1_048_576, ge=1024)
    HADOLINT_BIN: str = "hadolint"
    HF_ENDPOINT: str = "https://huggingface.co"
    HF_TOKEN: str | None = None
    FLOWER_PORT: int = Field(5555, ge=1, le=65535)
    # Flower reads these FLOWER_* variables itself too; the Procfile passes them explicitly
    FLOWER_BASIC_AUTH: str | None = Field(None, pattern=r"^[^:,]+:[^,]+$")  # "user:password"
    FLOWER_URL_PREFIX: str = Field("", pattern=r"^[A-Za-z0-9._~/-]*$")  # e.g. "flower"
    # monitoring: deployment sampling, URL policy, alert webhook
    SAMPLE_INTERVAL_SECONDS: float = Field(60.0, ge=1, le=86400)
    SAMPLE_CONCURRENCY: int = Field(16, ge=1, le=256)
    SAMPLE_TIMEOUT_SECONDS: float = Field(5.0, gt=0, le=120)
    SAMPLE_MAX_BACKOFF_SECONDS: float = Field(3600.0, ge=1)
    DEPLOYMENT_ALLOWED_HOSTS: Annotated[list[str], NoDecode] = []
    WEBHOOK_TIMEOUT_SECONDS: float = Field(10.0, gt=0, le=120)
    ALERT_WEBHOOK_QUEUE: str = "default"
    RETENTION_INTERVAL_SECONDS: float = Field(86400.0, ge=60)
    # rate limiting of job submissions (POST /api/generate, /api/benchmark): "N/unit" with unit
    # second, minute, hour or day, per API key (or per client address without a key); "off"
    RATE_LIMIT_SUBMISSIONS: str = "120/minute"
    # reverse proxies in front of the API whose X-Forwarded-For is trusted (0: use the peer)
    TRUSTED_PROXIES: int = Field(0, ge=0, le=10)

    @field_validator("ALLOWED_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("DEPLOYMENT_ALLOWED_HOSTS", mode="before")
    @classmethod
    def _split_hosts(cls, value):
        if isinstance(value, str):
            return [h.strip().lower().strip("[]") for h in value.split(",") if h.strip()]
        return value

    @field_validator("RATE_LIMIT_SUBMISSIONS")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value.strip()

    @field_validator("MAX_MEMORY")
    @classmethod
    def _memory(cls, value: str) -> str:
        parse_memory(value)
        return value

    @field_validator("DB_PATH")
    @classmethod
    def _db(cls, value: str) -> str:
        from sqlalchemy.engine import make_url

        try:
            make_url(value)
        except Exception as exc:
            raise ValueError(f"not a database URL such as sqlite:///metrics.db ({exc})") from None
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _limits(self):
        if self.FLASK_ENV == "production" and self.SECRET_KEY == DEFAULT_SECRET_KEY:
            raise ValueError(
                "SECRET_KEY: production refuses the default secret key; set SECRET_KEY "
                "to a long random value"
            )
        if self.FLASK_ENV == "production" and len(self.SECRET_KEY) < 16:
            raise ValueError("SECRET_KEY: production needs at least 16 characters")
        if not self.TASK_SOFT_TIME_LIMIT < self.TASK_TIME_LIMIT < self.BROKER_VISIBILITY_TIMEOUT:
            raise ValueError(
                "TASK_SOFT_TIME_LIMIT < TASK_TIME_LIMIT < BROKER_VISIBILITY_TIMEOUT must hold"
            )
        return self

    @property
    def submission_rate(self) -> tuple[int, int] | None:
        """(requests, window seconds) from RATE_LIMIT_SUBMISSIONS; None when "off"."""
        return parse_rate(self.RATE_LIMIT_SUBMISSIONS)

    @property
    def max_memory_bytes(self) -> int:
        return parse_memory(self.MAX_MEMORY)

    @property
    def auth_required(self) -> bool:
        return self.FLASK_ENV == "production" or self.REQUIRE_API_KEY

    def redis_db_url(self, db: int) -> str:
        """REDIS_URL with its database number replaced (broker 0, backend 1, cache 2)."""
        from redis.connection import parse_url  # light; no server contact

        if self.REDIS_URL.startswith("unix://"):
            base = self.REDIS_URL.split("?", 1)[0]
            return f"{base}?db={db}"
        parse_url(self.REDIS_URL)
        base, _, query = self.REDIS_URL.partition("?")
        scheme, rest = base.split("://", 1)
        host = rest.split("/", 1)[0]
        return f"{scheme}://{host}/{db}" + (f"?{query}" if query else "")


class SettingsError(SystemExit):
    pass


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {msg}" if where != "settings" else f"  {msg}")
        print("modelport: invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SettingsError(2) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings() -> None:
    get_settings.cache_clear()
