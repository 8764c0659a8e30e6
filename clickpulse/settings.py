"""Every environment variable ClickPulse reads, with defaults for a local stack.

One module so that the collector, the consumer, the API and the Dagster resources agree on addresses,
topics and the lateness allowance that drives both the stream's grace period and dbt's lookback.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickpulse.kafka_security import (
    KafkaConfigError,
    SaslMechanism,
    SecurityProtocol,
    read_client_properties,
    security_properties,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """ClickPulse configuration, read from the environment (no prefix for the shared service addresses)."""

    # Errors name the variable and the reason but never echo the input: several settings are secrets.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    # Kafka TLS/SASL (README, "Managed Kafka"); checked by clickpulse.kafka_security when the settings load.
    kafka_security_protocol: SecurityProtocol | None = Field(
        None,
        alias="CLICKPULSE_KAFKA_SECURITY_PROTOCOL",
        description="librdkafka security.protocol: SASL_SSL for Confluent Cloud, MSK SCRAM, Aiven SASL.",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, alias="CLICKPULSE_KAFKA_SASL_MECHANISM", description="sasl.mechanism."
    )
    kafka_sasl_username: str | None = Field(None, alias="CLICKPULSE_KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, alias="CLICKPULSE_KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: str | None = Field(
        None,
        alias="CLICKPULSE_KAFKA_SSL_CA_LOCATION",
        description="CA bundle (PEM) to verify the brokers; the system store if unset.",
    )
    kafka_config: SecretStr | None = Field(
        None,
        alias="CLICKPULSE_KAFKA_CONFIG",
        description="More librdkafka properties: a .properties or .json file, or an inline JSON object.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    env: Literal["local", "prod"] = Field("local", alias="CLICKPULSE_ENV")

    write_keys: SecretStr = Field(SecretStr("dev-write-key"), alias="CLICKPULSE_WRITE_KEYS")
    read_keys: SecretStr = Field(SecretStr("dev-read-key"), alias="CLICKPULSE_READ_KEYS")

    collector_host: str = Field("127.0.0.1", alias="CLICKPULSE_COLLECTOR_HOST")
    collector_port: int = Field(8001, alias="CLICKPULSE_COLLECTOR_PORT")
    api_host: str = Field("127.0.0.1", alias="CLICKPULSE_API_HOST")
    api_port: int = Field(8000, alias="CLICKPULSE_API_PORT")
    api_public_collector_url: str | None = Field(
        None,
        alias="CLICKPULSE_PUBLIC_COLLECTOR_URL",
        description="Collector base URL the demo player posts to; http://<collector host>:<port> if unset.",
    )
    api_player_write_key: SecretStr | None = Field(
        None,
        alias="CLICKPULSE_PLAYER_WRITE_KEY",
        description="Write key handed to the demo player page; the first of CLICKPULSE_WRITE_KEYS if unset.",
    )
    api_sse_heartbeat_s: float = Field(
        15.0, alias="CLICKPULSE_API_SSE_HEARTBEAT_S", gt=0, description="SSE keep-alive comment interval."
    )
    api_stats_cache_ms: int = Field(
        1000,
        alias="CLICKPULSE_API_STATS_CACHE_MS",
        ge=0,
        description="How long one process reuses a video's stats (0 = read Redis on every request).",
    )
    api_bench_routes: bool = Field(
        False,
        alias="CLICKPULSE_API_BENCH_ROUTES",
        description="Adds the hidden GET /bench/constant route that the API benchmark compares against.",
    )

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

    redis_url_live: str | None = Field(
        None,
        alias="CLICKPULSE_REDIS_URL_LIVE",
        description="Live counters, trending, dedupe; REDIS_URL if unset.",
    )
    redis_url_windows: str | None = Field(
        None, alias="CLICKPULSE_REDIS_URL_WINDOWS", description="Minute/hour buckets and windowed uniques."
    )
    redis_url_profiles: str | None = Field(
        None, alias="CLICKPULSE_REDIS_URL_PROFILES", description="User profiles and user attributes."
    )
    redis_url_videos: str | None = Field(
        None, alias="CLICKPULSE_REDIS_URL_VIDEOS", description="Video metadata hashes."
    )
    redis_url_recs: str | None = Field(
        None, alias="CLICKPULSE_REDIS_URL_RECS", description="Recommendation lists and their version pointer."
    )
    redis_prefix: str = Field(
        "cp", alias="CLICKPULSE_REDIS_PREFIX", min_length=1, description="Prefix of every ClickPulse key."
    )
    live_channel_prefix: str = Field(
        "",
        alias="CLICKPULSE_LIVE_CHANNEL_PREFIX",
        description="Namespace for the live:* Pub/Sub channels; empty gives the documented bare names.",
    )

    consumer_group: str = Field("realtime", alias="CLICKPULSE_CONSUMER_GROUP")
    consumer_batch_size: int = Field(2000, alias="CLICKPULSE_CONSUMER_BATCH_SIZE", ge=1, le=100_000)
    consumer_batch_timeout_s: float = Field(
        0.05,
        alias="CLICKPULSE_CONSUMER_BATCH_TIMEOUT_S",
        gt=0,
        description="How long consume() waits to fill a batch; bounds the latency added at low rates.",
    )
    consumer_session_timeout_ms: int = Field(30_000, alias="CLICKPULSE_CONSUMER_SESSION_TIMEOUT_MS", ge=1000)
    consumer_metrics_port: int = Field(
        8002, alias="CLICKPULSE_CONSUMER_METRICS_PORT", ge=0, description="0 disables /metrics."
    )
    consumer_lua_max_events: int = Field(
        2000,
        alias="CLICKPULSE_CONSUMER_LUA_MAX_EVENTS",
        ge=1,
        description="Events per Lua call at most, so one call never blocks Redis for long.",
    )
    live_publish_interval_ms: int = Field(250, alias="CLICKPULSE_LIVE_PUBLISH_INTERVAL_MS", ge=10)
    enrichment_cache_size: int = Field(50_000, alias="CLICKPULSE_ENRICHMENT_CACHE_SIZE", ge=0)
    enrichment_cache_ttl_s: float = Field(300.0, alias="CLICKPULSE_ENRICHMENT_CACHE_TTL_S", ge=0)

    trending_weight_impression: float = Field(0.1, alias="CLICKPULSE_TRENDING_WEIGHT_IMPRESSION", ge=0)
    trending_weight_click: float = Field(1.0, alias="CLICKPULSE_TRENDING_WEIGHT_CLICK", ge=0)
    trending_weight_conversion: float = Field(5.0, alias="CLICKPULSE_TRENDING_WEIGHT_CONVERSION", ge=0)
    trending_half_life_hours: float = Field(
        6.0,
        alias="CLICKPULSE_TRENDING_HALF_LIFE_HOURS",
        gt=0,
        description="Half-life of the trending score; the dbt popularity mart uses the same value.",
    )
    trending_max_members: int = Field(10_000, alias="CLICKPULSE_TRENDING_MAX_MEMBERS", ge=10)
    trending_renormalise_half_lives: float = Field(
        64.0,
        alias="CLICKPULSE_TRENDING_RENORMALISE_HALF_LIVES",
        gt=0,
        description="Rescale the stored trending scores once the clock is this many half-lives past t0.",
    )
    dedupe_margin_minutes: int = Field(
        30,
        alias="CLICKPULSE_DEDUPE_MARGIN_MINUTES",
        ge=0,
        description="The event_id seen-set covers the allowed lateness plus this margin.",
    )
    profile_ttl_days: int = Field(30, alias="CLICKPULSE_PROFILE_TTL_DAYS", ge=1)
    profile_recent_videos: int = Field(50, alias="CLICKPULSE_PROFILE_RECENT_VIDEOS", ge=1)

    # Recommendations: training weights and decay, evaluation gate, publishing, serving blend.
    recs_weight_impression: float = Field(
        0.1, alias="CLICKPULSE_RECS_WEIGHT_IMPRESSION", ge=0, description="Training weight of an impression."
    )
    recs_weight_click: float = Field(1.0, alias="CLICKPULSE_RECS_WEIGHT_CLICK", gt=0)
    recs_weight_conversion: float = Field(3.0, alias="CLICKPULSE_RECS_WEIGHT_CONVERSION", gt=0)
    recs_half_life_days: float = Field(
        14.0, alias="CLICKPULSE_RECS_HALF_LIFE_DAYS", gt=0, description="Time decay of training weights."
    )
    recs_training_days: int = Field(
        90, alias="CLICKPULSE_RECS_TRAINING_DAYS", ge=1, description="Interactions read from the mart."
    )
    recs_holdout_share: float = Field(
        0.2, alias="CLICKPULSE_RECS_HOLDOUT_SHARE", gt=0, lt=1, description="Latest share held out."
    )
    recs_top_n: int = Field(40, alias="CLICKPULSE_RECS_TOP_N", ge=1, le=500)
    recs_similar_k: int = Field(20, alias="CLICKPULSE_RECS_SIMILAR_K", ge=1, le=500)
    recs_ndcg_gate_factor: float = Field(
        1.1,
        alias="CLICKPULSE_RECS_NDCG_GATE_FACTOR",
        gt=0,
        description="Publish only when the chosen model's NDCG@10 >= this factor x popularity's.",
    )
    recs_als_factors: int = Field(64, alias="CLICKPULSE_RECS_ALS_FACTORS", ge=2)
    recs_als_iterations: int = Field(15, alias="CLICKPULSE_RECS_ALS_ITERATIONS", ge=1)
    recs_als_regularization: float = Field(0.05, alias="CLICKPULSE_RECS_ALS_REGULARIZATION", ge=0)
    recs_als_alpha: float = Field(10.0, alias="CLICKPULSE_RECS_ALS_ALPHA", gt=0)
    recs_num_threads: int = Field(2, alias="CLICKPULSE_RECS_NUM_THREADS", ge=1)
    recs_version_ttl_hours: int = Field(
        72,
        alias="CLICKPULSE_RECS_VERSION_TTL_HOURS",
        ge=1,
        description="Lists of a published version expire this long after publishing (retrain more often).",
    )
    recs_ab_share: float = Field(
        0.0,
        alias="CLICKPULSE_RECS_AB_SHARE",
        ge=0,
        le=1,
        description="Share of users (by a stable hash) served the previous version instead of the current.",
    )
    recs_realtime_recent: int = Field(
        5, alias="CLICKPULSE_RECS_REALTIME_RECENT", ge=0, description="Recent clicks blended at request time."
    )
    recs_realtime_weight: float = Field(1.0, alias="CLICKPULSE_RECS_REALTIME_WEIGHT", ge=0)

    redis_maxmemory: str = Field("2gb", alias="CLICKPULSE_REDIS_MAXMEMORY")

    # Security (README, "Security").
    redis_acl: bool = Field(
        True,
        alias="CLICKPULSE_REDIS_ACL",
        description="Redis ACL users per role, default user disabled; 0 opts out (open default user).",
    )
    redis_acl_secrets_file: Path | None = Field(
        None,
        alias="CLICKPULSE_REDIS_ACL_SECRETS",
        description="Generated role passwords (0600); <data dir>/redis/acl-secrets.json if unset.",
    )
    redis_password_admin: SecretStr | None = Field(None, alias="CLICKPULSE_REDIS_PASSWORD_ADMIN")
    redis_password_consumer: SecretStr | None = Field(None, alias="CLICKPULSE_REDIS_PASSWORD_CONSUMER")
    redis_password_api: SecretStr | None = Field(None, alias="CLICKPULSE_REDIS_PASSWORD_API")
    redis_password_publisher: SecretStr | None = Field(None, alias="CLICKPULSE_REDIS_PASSWORD_PUBLISHER")
    redis_password_bridge: SecretStr | None = Field(None, alias="CLICKPULSE_REDIS_PASSWORD_BRIDGE")
    redis_password_ingest: SecretStr | None = Field(None, alias="CLICKPULSE_REDIS_PASSWORD_INGEST")
    pseudonymize_key: SecretStr | None = Field(
        None,
        alias="CLICKPULSE_PSEUDONYMIZE_KEY",
        description="HMAC key: the collector and the bridge replace user_id by u_<HMAC-SHA256>; unset = off.",
    )
    stack_start_timeout_s: float = Field(120.0, alias="CLICKPULSE_STACK_START_TIMEOUT_S")

    data_dir: Path = Field(PROJECT_ROOT / ".data", alias="CLICKPULSE_DATA_DIR")
    cache_dir: Path = Field(PROJECT_ROOT / ".cache", alias="CLICKPULSE_CACHE_DIR")

    # Batch path (Dagster, lake, warehouse, dbt). Relative paths resolve against the repository root, as
    # dbt_project/profiles.yml resolves CLICKPULSE_DUCKDB_PATH, so Dagster and dbt open the same file.
    duckdb_path: Path = Field(Path(".data/warehouse.duckdb"), alias="CLICKPULSE_DUCKDB_PATH")
    lake_dir: Path = Field(Path(".data/lake"), alias="CLICKPULSE_LAKE_DIR")
    dimensions_dir: Path = Field(
        Path(".data/dimensions"),
        alias="CLICKPULSE_DIMENSIONS_DIR",
        description="Where the simulator writes video_catalog.csv and user_profiles.csv.",
    )
    gcs_bucket: str | None = Field(
        None, alias="CLICKPULSE_GCS_BUCKET", description="prod: the lake lives at gs://BUCKET/lake when set."
    )
    bq_project: str | None = Field(None, alias="CLICKPULSE_BQ_PROJECT")
    bq_dataset: str = Field("clickpulse", alias="CLICKPULSE_BQ_DATASET", description="dbt models")
    bq_raw_dataset: str = Field("clickpulse_raw", alias="CLICKPULSE_BQ_RAW_DATASET", description="raw tables")
    bq_location: str = Field("US", alias="CLICKPULSE_BQ_LOCATION")
    bq_video_source_table: str | None = Field(
        None,
        alias="CLICKPULSE_BQ_VIDEO_SOURCE_TABLE",
        description="prod: project.dataset.table of the catalog",
    )
    bq_user_source_table: str | None = Field(
        None,
        alias="CLICKPULSE_BQ_USER_SOURCE_TABLE",
        description="prod: project.dataset.table of user profiles",
    )
    partitions_start: str = Field(
        "2026-01-01-00:00",
        alias="CLICKPULSE_PARTITIONS_START",
        pattern=r"^\d{4}-\d{2}-\d{2}-\d{2}:00$",
        description="First hourly partition of raw_click_events (UTC, Dagster's YYYY-MM-DD-HH:MM).",
    )
    allowed_early_minutes: int = Field(
        5,
        alias="CLICKPULSE_ALLOWED_EARLY_MINUTES",
        ge=0,
        description="How far event_time may run ahead of the Kafka timestamp hour (client clocks).",
    )
    daily_retrain_cron: str = Field(
        "0 3 * * *", alias="CLICKPULSE_DAILY_RETRAIN_CRON", description="UTC cron of the daily_retrain job."
    )
    export_batch_size: int = Field(20_000, alias="CLICKPULSE_EXPORT_BATCH_SIZE", ge=1)
    export_log_every: int = Field(250_000, alias="CLICKPULSE_EXPORT_LOG_EVERY", ge=1)
    export_max_rejected_share: float = Field(
        0.05,
        alias="CLICKPULSE_EXPORT_MAX_REJECTED_SHARE",
        ge=0.0,
        le=1.0,
        description=(
            "Share of an hour's records the expectation suite may reject before its check fails as an "
            "error; below it, rejects are a warning."
        ),
    )

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        self.kafka_security()
        return self

    def kafka_security(self) -> dict[str, Any]:
        """TLS/SASL properties every Kafka client adds to ``bootstrap.servers`` (empty for PLAINTEXT);
        raises ``KafkaConfigError`` (a ValueError) naming the variable to fix."""
        try:
            extra = (
                read_client_properties(self.kafka_config.get_secret_value()) if self.kafka_config else None
            )
        except OSError as exc:
            raise KafkaConfigError(f"CLICKPULSE_KAFKA_CONFIG could not be read: {exc.strerror}") from None
        return security_properties(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None,
            ca_location=self.kafka_ssl_ca_location,
            extra=extra,
        )

    @field_validator("duckdb_path", "lake_dir", "dimensions_dir")
    @classmethod
    def _under_project_root(cls, value: Path) -> Path:
        return value if value.is_absolute() else PROJECT_ROOT / value

    def redis_passwords(self) -> dict[str, SecretStr | None]:
        """Role -> password set in the environment (``CLICKPULSE_REDIS_PASSWORD_<ROLE>``)."""
        prefix = "redis_password_"
        return {
            name[len(prefix) :]: getattr(self, name)
            for name in type(self).model_fields
            if name.startswith(prefix)
        }

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
