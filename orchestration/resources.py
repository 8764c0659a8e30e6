"""Resources, and the one place that picks them for an environment (CLICKPULSE_ENV=local|prod).

``local``: DuckDB file under .data/, Parquet lake under .data/lake, dimension CSVs from the simulator.
``prod``: BigQuery (load jobs into hour-partitioned tables), a GCS lake when CLICKPULSE_GCS_BUCKET is
set (else the local lake), dimensions read from BigQuery tables. Endpoints and secrets in ``prod`` are
``dg.EnvVar``s, resolved by Dagster when a run starts, so a missing variable fails that run with its
name instead of silently falling back to a local default. ``local`` takes the values of
``clickpulse.settings`` (the same environment variables, with local defaults).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import dagster as dg
import pyarrow as pa
from dagster_dbt import DbtCliResource
from pydantic import PrivateAttr

from assets.dbt.project import dbt_project, dbt_target
from assets.warehouse.dimensions import read_dimension_csv
from assets.warehouse.tables import USER_PROFILES, VIDEO_CATALOG, RawTable, conform
from clickpulse.settings import Settings, get_settings
from orchestration.lake import LakeResource
from orchestration.warehouse import BigQueryWarehouse, DuckDBWarehouse, Warehouse
from streaming.kafka_io import check_credentials, client_config, consumer_config

if TYPE_CHECKING:
    from confluent_kafka import Consumer

    from streaming.keyspace import Keyspace
    from streaming.redis_conn import RedisRouter

logger = logging.getLogger(__name__)


def env_name(field: str) -> str:
    """The environment variable behind a settings field, so EnvVars and settings cannot disagree."""
    alias = Settings.model_fields[field].alias
    if alias is None:
        raise KeyError(field)
    return alias


# KafkaResource field -> the settings field it carries (TLS/SASL, README "Managed Kafka").
KAFKA_SECURITY_FIELDS: Final = {
    "security_protocol": "kafka_security_protocol",
    "sasl_mechanism": "kafka_sasl_mechanism",
    "sasl_username": "kafka_sasl_username",
    "sasl_password": "kafka_sasl_password",
    "ssl_ca_location": "kafka_ssl_ca_location",
    "client_properties": "kafka_config",
}


class KafkaResource(dg.ConfigurableResource):
    """Reads clicks.enriched by explicit offsets; never joins a group or commits.

    The TLS/SASL fields mirror ``CLICKPULSE_KAFKA_*`` and go through the same ``client_config`` as every
    other client; ``resources_by_env`` sets the ones in use as ``dg.EnvVar``s, so Dagster resolves them
    when a run starts and never shows a password in the run's configuration.
    """

    bootstrap_servers: str
    enriched_topic: str
    group_id: str = "clickpulse-dagster-export"
    batch_size: int = 20_000
    timeout_s: float = 10.0
    stall_timeout_s: float = 30.0
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    client_properties: str | None = None  # CLICKPULSE_KAFKA_CONFIG: a properties/JSON file or inline JSON

    def connection_settings(self) -> Settings:
        """The settings with this resource's address and security: validated like the environment's."""
        fields: dict[str, Any] = {"kafka_bootstrap_servers": self.bootstrap_servers}
        fields.update({name: getattr(self, attr) for attr, name in KAFKA_SECURITY_FIELDS.items()})
        return Settings(**fields)

    @contextmanager
    def consumer(self) -> Iterator[Consumer]:
        from confluent_kafka import Consumer

        settings = self.connection_settings()
        check_credentials(client_config(settings), self.timeout_s)  # a refused login fails the run at once
        config = consumer_config(
            settings,
            self.group_id,
            **{
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                "fetch.min.bytes": 256 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
            },
        )
        consumer = Consumer(config)
        try:
            yield consumer
        finally:
            consumer.close()


class RedisResource(dg.ConfigurableResource):
    """The Redis key families ClickPulse shares with the stream: one router (a pool per URL) per run.

    ``url`` serves every family unless a family has its own URL (``streaming.redis_conn.Family``);
    ``prefix`` is the keyspace prefix (tests use their own). With ``CLICKPULSE_REDIS_ACL`` on, URLs
    without credentials log in as ``role``'s Redis user (its password from the environment or the
    stack's secrets file, resolved when the router connects, so no password sits in the run config).
    """

    url: str
    prefix: str = "cp"
    role: str = "publisher"
    live_url: str | None = None
    windows_url: str | None = None
    profiles_url: str | None = None
    videos_url: str | None = None
    recs_url: str | None = None
    _router: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._router = self._connect()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._router is not None:
            self._router.close()
            self._router = None

    def _connect(self) -> RedisRouter:
        from streaming.redis_conn import Family, RedisRouter
        from streaming.redis_roles import Role

        urls = {
            Family.LIVE: self.live_url or self.url,
            Family.WINDOWS: self.windows_url or self.url,
            Family.PROFILES: self.profiles_url or self.url,
            Family.VIDEOS: self.videos_url or self.url,
            Family.RECS: self.recs_url or self.url,
        }
        return RedisRouter.logged_in(urls, get_settings(), Role(self.role))

    def router(self) -> RedisRouter:
        if self._router is None:
            self._router = self._connect()
        return self._router

    def keyspace(self) -> Keyspace:
        from streaming.keyspace import Keyspace

        return Keyspace(prefix=self.prefix)


class DimensionSource(dg.ConfigurableResource):
    """Where video_catalog and user_profiles come from. See CsvDimensions, BigQueryDimensions."""

    def read(self, table: RawTable) -> pa.Table:
        raise NotImplementedError

    def describe(self, table: RawTable) -> str:
        raise NotImplementedError


class CsvDimensions(DimensionSource):
    """The simulator's files: ``<directory>/video_catalog.csv`` and ``user_profiles.csv``."""

    directory: str

    def _path(self, table: RawTable) -> str:
        return f"{self.directory.rstrip('/')}/{table.name}.csv"

    def read(self, table: RawTable) -> pa.Table:
        return read_dimension_csv(self._path(table), table)

    def describe(self, table: RawTable) -> str:
        return self._path(table)


class BigQueryDimensions(DimensionSource):
    """Production: the catalog and user tables maintained by other systems, read whole."""

    project: str
    video_table: str
    user_table: str
    location: str = "US"

    def _table(self, table: RawTable) -> str:
        return {VIDEO_CATALOG.name: self.video_table, USER_PROFILES.name: self.user_table}[table.name]

    def read(self, table: RawTable) -> pa.Table:
        from google.cloud import bigquery

        client = bigquery.Client(project=self.project, location=self.location)
        columns = ", ".join(table.columns)
        rows = client.query(f"select {columns} from `{self._table(table)}`").result().to_arrow()
        return conform(rows, table)

    def describe(self, table: RawTable) -> str:
        return f"bigquery://{self._table(table)}"


def kafka_security_env(settings: Settings) -> dict[str, Any]:
    """The export's TLS/SASL fields: a ``dg.EnvVar`` for each setting in use (resolved when a run starts)."""
    return {
        attr: dg.EnvVar(env_name(name))
        for attr, name in KAFKA_SECURITY_FIELDS.items()
        if getattr(settings, name) is not None
    }


def resources_by_env(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every environment's resources; ``resources_for`` picks one."""
    local_warehouse: Warehouse = DuckDBWarehouse(path=str(settings.duckdb_path))
    prod_warehouse: Warehouse = BigQueryWarehouse(
        project=dg.EnvVar(env_name("bq_project")),
        dataset=settings.bq_dataset,
        raw_dataset=settings.bq_raw_dataset,
        location=settings.bq_location,
    )
    prod_lake = (
        LakeResource(root=f"gs://{settings.gcs_bucket}/lake")
        if settings.gcs_bucket
        else LakeResource(root=str(settings.lake_dir))
    )
    return {
        "local": {
            "warehouse": local_warehouse,
            "lake": LakeResource(root=str(settings.lake_dir)),
            "kafka": KafkaResource(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                enriched_topic=settings.topic_enriched,
                batch_size=settings.export_batch_size,
                **kafka_security_env(settings),
            ),
            "redis": RedisResource(
                url=settings.redis_url,
                prefix=settings.redis_prefix,
                live_url=settings.redis_url_live,
                windows_url=settings.redis_url_windows,
                profiles_url=settings.redis_url_profiles,
                videos_url=settings.redis_url_videos,
                recs_url=settings.redis_url_recs,
            ),
            "dimensions": CsvDimensions(directory=str(settings.dimensions_dir)),
            "dbt": DbtCliResource(project_dir=dbt_project(), target=dbt_target("local")),
        },
        "prod": {
            "warehouse": prod_warehouse,
            "lake": prod_lake,
            "kafka": KafkaResource(
                bootstrap_servers=dg.EnvVar(env_name("kafka_bootstrap_servers")),
                enriched_topic=settings.topic_enriched,
                batch_size=settings.export_batch_size,
                **kafka_security_env(settings),
            ),
            "redis": RedisResource(
                url=dg.EnvVar(env_name("redis_url")),
                prefix=settings.redis_prefix,
                live_url=settings.redis_url_live,
                windows_url=settings.redis_url_windows,
                profiles_url=settings.redis_url_profiles,
                videos_url=settings.redis_url_videos,
                recs_url=settings.redis_url_recs,
            ),
            "dimensions": BigQueryDimensions(
                project=dg.EnvVar(env_name("bq_project")),
                video_table=dg.EnvVar(env_name("bq_video_source_table")),
                user_table=dg.EnvVar(env_name("bq_user_source_table")),
                location=settings.bq_location,
            ),
            "dbt": DbtCliResource(project_dir=dbt_project(), target=dbt_target("prod")),
        },
    }


def resources_for(settings: Settings | None = None) -> dict[str, Any]:
    """The resources of CLICKPULSE_ENV: the single switch between local and production."""
    settings = settings or get_settings()
    return resources_by_env(settings)[settings.env]
