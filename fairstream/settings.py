"""Typed settings read from FAIRSTREAM_* environment variables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
# The password of a URL's userinfo: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):[^@/\s]*@")


def redact_url(value: str) -> str:
    """Return `value` with the password of any URL in it replaced by ***."""
    return _URL_PASSWORD.sub(r"\1:***@", value)


class Settings(BaseSettings):
    """Hold every endpoint and knob one deployable needs; defaults match `fairstream stack up`."""

    model_config = SettingsConfigDict(env_prefix="FAIRSTREAM_", extra="ignore")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Show every field, URL passwords (Redis, MongoDB, ...) redacted like SecretStr."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value

    stack_dir: Path = Field(default=REPO_ROOT / ".stack")
    kafka_bootstrap: str = "127.0.0.1:9092"
    schema_registry_url: str | None = None
    topic_prefix: str = ""
    # Kafka client security, translated for every client by fairstream/kafka_security.py.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # A file holding the SASL password (used when kafka_sasl_password is unset).
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    postgres_dsn: SecretStr = SecretStr("postgresql://fairstream@127.0.0.1:5433/fairstream")
    redis_url: str = "redis://127.0.0.1:6380/0"
    mongo_url: str = "mongodb://127.0.0.1:27018/"
    mongo_database: str = "fairstream"
    # Documents a MongoDB document projection writes at once (each in its own order).
    mongo_write_concurrency: int = Field(default=16, ge=1)
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # Bias levels (domain reference: medium 0.3, high 0.6, critical 0.8).
    bias_threshold_medium: float = 0.3
    bias_threshold_high: float = 0.6
    bias_threshold_critical: float = 0.8
    bias_model: str = "fast"
    # The model version the API answers for by default; unset: the version of bias_model.
    bias_active_model_version: str | None = None
    models_dir: Path = Field(default=REPO_ROOT / "models")

    # Bias scoring processor: consumer group (Faust app id) and micro-batching.
    bias_processor_group: str = "fairstream-bias-scorer"
    bias_batch_max: int = 64
    bias_batch_wait_ms: int = 20
    # onnxruntime intra-op threads of the worker's session; unset: min(2, cores).
    bias_intra_op_threads: int | None = Field(default=None, ge=1)
    # Quality model: leave-one-out evidence variants per text at or above medium (words,
    # or runs of words past this many); each costs an encoder pass. 0: no evidence.
    bias_evidence_spans: int = Field(default=16, ge=0, le=64)

    # Other processors: consumer group (Faust app id) of each, and their knobs.
    analytics_processor_group: str = "fairstream-analytics"
    analytics_grace_seconds: float = 60.0
    opportunity_processor_group: str = "fairstream-opportunity"
    campaign_processor_group: str = "fairstream-campaign-screening"
    campaign_screening_timeout_seconds: float = 300.0
    revenue_processor_group: str = "fairstream-revenue"
    # Faust consumer session timeout (s): how long a dead worker holds its partitions.
    processor_session_timeout_seconds: float = 60.0

    # Projections: PostgreSQL schema that holds the read models and their positions;
    # consumer groups are `<projection_group_prefix><projection name>`.
    pg_schema: str = "fairstream"
    bias_projection_group: str = "fairstream-proj-bias-results"
    projection_group_prefix: str = "fairstream-proj-"
    projection_batch_max: int = 500
    document_store: str = "mongo"  # "mongo" or "postgres" for document-shaped read models

    # Query API: privacy, rate limiting and caching.
    store_raw_text: bool = False
    api_rate_limit_per_minute: int = 600
    api_cache_ttl_seconds: int = 30
    api_cors_origins: list[str] = Field(default_factory=list)

    # Consumer-lag collector (runs inside the API; see operations/lag/README.md).
    lag_collector_enabled: bool = True
    lag_interval_seconds: float = 10.0
    lag_window_seconds: float = 120.0
    lag_min_samples: int = 3
    lag_history_retention_seconds: float = 93600.0
    lag_replay_pattern: str = "-replay-"

    # Service logs (fairstream/logs.py) and the metrics/probe port of processors and projections.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    metrics_port: int | None = None


def load_settings() -> Settings:
    """Read settings from the environment."""
    return Settings()
