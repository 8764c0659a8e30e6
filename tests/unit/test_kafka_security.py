"""Kafka TLS/SASL settings: what reaches every client, and the mistakes caught when the settings load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pydantic import ValidationError

from clickpulse.settings import Settings
from orchestration.resources import KAFKA_SECURITY_FIELDS, KafkaResource, resources_by_env
from streaming.kafka_io import admin_config, client_config, consumer_config, producer_config

SECRET = "pa55-word-never-shown"
SCRAM = {
    "KAFKA_BOOTSTRAP_SERVERS": "b-1.example.com:9096",
    "CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "CLICKPULSE_KAFKA_SASL_MECHANISM": "scram-sha-512",
    "CLICKPULSE_KAFKA_SASL_USERNAME": "clickpulse",
    "CLICKPULSE_KAFKA_SASL_PASSWORD": SECRET,
}


def _settings(**env: Any) -> Settings:
    return Settings(**env)


def test_plaintext_adds_nothing() -> None:
    assert _settings().kafka_security() == {}
    assert set(client_config(_settings())) == {"bootstrap.servers", "logger", "error_cb"}


def test_every_client_config_carries_the_security_settings() -> None:
    settings = _settings(**SCRAM)
    wanted = {
        "bootstrap.servers": "b-1.example.com:9096",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "clickpulse",
        "sasl.password": SECRET,
    }
    for config in (
        client_config(settings),
        admin_config(settings),
        producer_config(settings),
        consumer_config(settings, "g"),
    ):
        assert {k: config[k] for k in wanted} == wanted
    assert producer_config(settings)["enable.idempotence"] is True
    assert consumer_config(settings, "g")["group.id"] == "g"


def test_secrets_are_not_shown() -> None:
    settings = _settings(**SCRAM, CLICKPULSE_KAFKA_CONFIG=json.dumps({"ssl.key.password": "key-" + SECRET}))
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    with pytest.raises(ValidationError) as error:
        _settings(**{**SCRAM, "CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"})
    assert SECRET not in str(error.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLICKPULSE_KAFKA_SASL_MECHANISM": "PLAIN"}, "need CLICKPULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"CLICKPULSE_KAFKA_SASL_USERNAME": "u"}, "need CLICKPULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs CLICKPULSE_KAFKA_SASL_MECHANISM"),
        (
            {"CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CLICKPULSE_KAFKA_SASL_MECHANISM": "PLAIN"},
            "needs CLICKPULSE_KAFKA_SASL_USERNAME and CLICKPULSE_KAFKA_SASL_PASSWORD",
        ),
        ({"CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "CLICKPULSE_KAFKA_SECURITY_PROTOCOL"),
        (
            {"CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CLICKPULSE_KAFKA_SASL_MECHANISM": "KERBEROS"},
            "CLICKPULSE_KAFKA_SASL_MECHANISM",
        ),
        ({"CLICKPULSE_KAFKA_SSL_CA_LOCATION": "/etc/ssl/certs"}, "security.protocol is PLAINTEXT"),
        (
            {
                "CLICKPULSE_KAFKA_SECURITY_PROTOCOL": "SSL",
                "CLICKPULSE_KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem",
            },
            "/nonexistent/ca.pem does not exist",
        ),
        ({"CLICKPULSE_KAFKA_CONFIG": "/nonexistent/client.properties"}, "is not a file"),
        ({"CLICKPULSE_KAFKA_CONFIG": '{"security.protocol": '}, "not valid JSON"),
        ({"CLICKPULSE_KAFKA_CONFIG": '["security.protocol"]'}, "must be a JSON object"),
        ({"CLICKPULSE_KAFKA_CONFIG": '{"bootstrap.servers": "x:9092"}'}, "use KAFKA_BOOTSTRAP_SERVERS"),
        ({"CLICKPULSE_KAFKA_CONFIG": '{"enable.idempotence": false}'}, "ClickPulse sets itself"),
        ({"CLICKPULSE_KAFKA_CONFIG": '{"ssl.key.pem": {"a": 1}}'}, "string, number or boolean"),
    ],
)
def test_mistakes_fail_when_the_settings_load(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(**env)


def test_the_escape_hatch_reads_properties_and_json_files(tmp_path: Path) -> None:
    properties = tmp_path / "client.properties"
    properties.write_text(
        "# Aiven with client certificates\n"
        "security.protocol = SSL\n"
        f"ssl.ca.location={tmp_path}\n"
        "ssl.certificate.location=/secrets/service.cert\n\n"
        "ssl.key.location=/secrets/service.key\n"
    )
    from_file = _settings(CLICKPULSE_KAFKA_CONFIG=str(properties)).kafka_security()
    assert from_file == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(tmp_path),
        "ssl.certificate.location": "/secrets/service.cert",
        "ssl.key.location": "/secrets/service.key",
    }
    as_json = tmp_path / "client.json"
    as_json.write_text(json.dumps({"sasl.mechanisms": "PLAIN", "socket.keepalive.enable": True}))
    merged = _settings(**SCRAM, CLICKPULSE_KAFKA_CONFIG=str(as_json)).kafka_security()
    # the alias is normalised, and the named settings win over the file
    assert merged["sasl.mechanism"] == "SCRAM-SHA-512" and "sasl.mechanisms" not in merged
    assert merged["socket.keepalive.enable"] is True
    bad = tmp_path / "bad.properties"
    bad.write_text("security.protocol SSL\n")
    with pytest.raises(ValidationError, match="line 1 is not key=value"):
        _settings(CLICKPULSE_KAFKA_CONFIG=str(bad))


def test_dagster_gets_the_security_settings_as_env_vars() -> None:
    settings = _settings(**SCRAM, CLICKPULSE_KAFKA_SSL_CA_LOCATION="probe")
    for env in ("local", "prod"):
        kafka = resources_by_env(settings)[env]["kafka"]
        for attr, field in KAFKA_SECURITY_FIELDS.items():
            value = getattr(kafka, attr)
            if getattr(settings, field) is None:
                assert value is None
            else:
                assert value == dg.EnvVar(Settings.model_fields[field].alias)
    assert resources_by_env(_settings())["prod"]["kafka"].sasl_password is None


def test_the_export_resource_builds_its_consumer_from_the_same_settings() -> None:
    resource = KafkaResource(
        bootstrap_servers="b-1.example.com:9096",
        enriched_topic="clicks.enriched",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="key",
        sasl_password=SECRET,
    )
    config = client_config(resource.connection_settings())
    assert (config["security.protocol"], config["sasl.mechanism"], config["sasl.password"]) == (
        "SASL_SSL",
        "PLAIN",
        SECRET,
    )
    with pytest.raises(ValidationError, match="needs CLICKPULSE_KAFKA_SASL_PASSWORD"):
        KafkaResource(
            bootstrap_servers="b:9096",
            enriched_topic="t",
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_username="key",
        ).connection_settings()


def test_the_stack_does_not_start_a_plaintext_kafka_for_security_settings() -> None:
    from clickpulse.stack import launcher
    from clickpulse.stack.processes import StackError
    from tests.support.ingest import closed_port

    settings = _settings(**{**SCRAM, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port()}"})
    with pytest.raises(StackError, match="local Kafka ClickPulse starts is plaintext"):
        launcher.up(settings)
