"""Every environment variable ClickPulse reads, with defaults for a local stack.

One module so that the collector, the consumer, the API and the Dagster resources agree on addresses,
topics and the lateness allowance that drives both the stream's grace period and dbt's lookback.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """ClickPulse configuration, read from the environment (no prefix for the shared service addresses)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    env: Literal["local", "prod"] = Field("local", alias="CLICKPULSE_ENV")

    write_keys: SecretStr = Field(SecretStr("dev-write-key"), alias="CLICKPULSE_WRITE_KEYS")
    read_keys: SecretStr = Field(SecretStr("dev-read-key"), alias="CLICKPULSE_READ_KEYS")

    collector_host: str = Field("127.0.0.1", alias="CLICKPULSE_COLLECTOR_HOST")
    collector_port: int = Field(8001, alias="CLICKPULSE_COLLECTOR_PORT")
    api_host: str = Field("127.0.0.1", alias="CLICKPULSE_API_HOST")
    api_port: int = Field(8000, alias="CLICKPULSE_API_PORT")

    collector_cors_origins: str = Field(
        "*",
        alias="CLICKPULSE_COLLECTOR_CORS_ORIGINS",
        description="Comma-separated browser origins allowed to post events; * allows any player page.",
    )
    collector_delivery_timeout_s: float = Field(
        10.0,
        alias="CLICKPULSE_COLLECTOR_DELIVERY_TIMEOUT_S",
        gt=0,
        description="Producer message.timeout.ms: how long a request waits for Kafka before it gets a 503.",
    )
    collector_retry_after_s: int = Field(2, alias="CLICKPULSE_COLLECTOR_RETRY_AFTER_S", ge=0)
    collector_queue_full_wait_s: float = Field(
        0.5,
        alias="CLICKPULSE_COLLECTOR_QUEUE_FULL_WAIT_S",
        ge=0,
        description="How long a request waits for room in a full producer queue before it gets a 503.",
    )
    bridge_channel: str = Field("ingest:events", alias="CLICKPULSE_BRIDGE_CHANNEL")

    topic_raw: str = Field("clicks.raw", alias="CLICKPULSE_TOPIC_RAW")
    topic_enriched: str = Field("clicks.enriched", alias="CLICKPULSE_TOPIC_ENRICHED")
    topic_dlq: str = Field("clicks.dlq", alias="CLICKPULSE_TOPIC_DLQ")
    topic_partitions: int = Field(6, alias="CLICKPULSE_TOPIC_PARTITIONS", ge=1)

    allowed_lateness_minutes: int = Field(
        60,
        alias="CLICKPULSE_ALLOWED_LATENESS_MINUTES",
        ge=0,
        description="Stream grace for windowed counters and the dbt lookback for incremental marts.",
    )

    redis_maxmemory: str = Field("2gb", alias="CLICKPULSE_REDIS_MAXMEMORY")
    stack_start_timeout_s: float = Field(120.0, alias="CLICKPULSE_STACK_START_TIMEOUT_S")

    data_dir: Path = Field(PROJECT_ROOT / ".data", alias="CLICKPULSE_DATA_DIR")
    cache_dir: Path = Field(PROJECT_ROOT / ".cache", alias="CLICKPULSE_CACHE_DIR")

    @property
    def write_key_set(self) -> frozenset[str]:
        return _split_keys(self.write_keys)

    @property
    def read_key_set(self) -> frozenset[str]:
        return _split_keys(self.read_keys)

    @property
    def collector_cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.collector_cors_origins.split(",") if o.strip()]


def _split_keys(value: SecretStr) -> frozenset[str]:
    return frozenset(k.strip() for k in value.get_secret_value().split(",") if k.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests that change the environment call ``get_settings.cache_clear()``."""
    return Settings()
