"""Request shapes the collector answers before touching Kafka: auth, limits, encodings, CORS, docs.

Kafka is replaced by an in-memory producer here; what reaches Kafka is tested in tests/integration.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import TypedDict, Unpack

import orjson
import pytest
from fastapi.testclient import TestClient

from clickpulse.settings import Settings
from streaming.collector import create_app
from tests.support.fake_kafka import FakeProducer
from tests.support.ingest import make_event

WRITE = "wk-unit"
READ = "rk-unit"


class _Overrides(TypedDict, total=False):
    """The settings these tests vary, by environment alias, as the text an environment variable holds."""

    CLICKPULSE_COLLECTOR_RETRY_AFTER_S: str
    CLICKPULSE_COLLECTOR_CORS_ORIGINS: str


def _settings(**extra: Unpack[_Overrides]) -> Settings:
    return Settings(
        CLICKPULSE_WRITE_KEYS=f"{WRITE},other-{WRITE}",
        CLICKPULSE_READ_KEYS=READ,
        CLICKPULSE_TOPIC_RAW="raw",
        CLICKPULSE_TOPIC_DLQ="dlq",
        **extra,
    )


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer({"raw", "dlq"})


@pytest.fixture
def client(producer: FakeProducer) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(), producer=producer)) as test_client:
        yield test_client


def _post(client: TestClient, body: bytes, **headers: str) -> tuple[int, dict]:
    response = client.post("/v1/events", content=body, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {READ}"}, {"Authorization": WRITE}],
)
def test_missing_wrong_or_read_keys_are_401(
    client: TestClient, producer: FakeProducer, headers: dict
) -> None:
    response = client.post("/v1/events", content=orjson.dumps([make_event()]), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert producer.records == []


def test_every_write_key_and_the_query_parameter_work(client: TestClient, producer: FakeProducer) -> None:
    body = orjson.dumps([make_event()])
    assert _post(client, body, Authorization=f"Bearer other-{WRITE}")[0] == 200
    beacon = client.post(
        f"/v1/events?write_key={WRITE}", content=body, headers={"Content-Type": "text/plain"}
    )
    assert beacon.status_code == 200
    assert client.post(f"/v1/events?write_key={READ}", content=body).status_code == 401
    assert len(producer.records) == 2


def test_declared_oversize_body_is_413_unread(client: TestClient, producer: FakeProducer) -> None:
    status, answer = _post(
        client, b"[]", Authorization=f"Bearer {WRITE}", **{"Content-Length": str(600 * 1024)}
    )
    assert status == 413 and "larger than" in answer["error"]
    assert producer.records == []


def test_unsupported_encoding_is_415(client: TestClient) -> None:
    status, _ = _post(client, b"[]", Authorization=f"Bearer {WRITE}", **{"Content-Encoding": "br"})
    assert status == 415


def test_empty_array_and_gzip_answer_the_contract_shape(client: TestClient) -> None:
    assert _post(client, b"[]", Authorization=f"Bearer {WRITE}") == (200, {"accepted": 0, "rejected": []})
    body = gzip.compress(orjson.dumps({"events": [make_event(), {"event_type": "click"}]}))
    status, answer = _post(client, body, Authorization=f"Bearer {WRITE}", **{"Content-Encoding": "gzip"})
    assert status == 200
    assert answer["accepted"] == 1 and [r["index"] for r in answer["rejected"]] == [1]


def test_delivery_failure_is_503_with_retry_after() -> None:
    producer = FakeProducer({"raw", "dlq"}, fail_with="KafkaError{code=_MSG_TIMED_OUT}")
    with TestClient(
        create_app(_settings(CLICKPULSE_COLLECTOR_RETRY_AFTER_S="7"), producer=producer)
    ) as client:
        response = client.post(
            "/v1/events", content=orjson.dumps([make_event()]), headers={"Authorization": f"Bearer {WRITE}"}
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "re-send the whole batch" in response.json()["retry"]


def test_cors_preflight_default_allows_any_origin(client: TestClient) -> None:
    response = client.options(
        "/v1/events",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, content-encoding",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_cors_origins_are_configurable(producer: FakeProducer) -> None:
    app = create_app(
        _settings(CLICKPULSE_COLLECTOR_CORS_ORIGINS="https://a.example, https://b.example"), producer
    )
    with TestClient(app) as client:
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = client.options("/v1/events", headers={"Origin": "https://b.example", **preflight})
        denied = client.options("/v1/events", headers={"Origin": "https://evil.example", **preflight})
        simple = client.post(
            f"/v1/events?write_key={WRITE}", content=b"[]", headers={"Origin": "https://a.example"}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://b.example"
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
    assert simple.headers["access-control-allow-origin"] == "https://a.example"


def test_health_reports_missing_topics() -> None:
    with TestClient(create_app(_settings(), producer=FakeProducer({"raw"}))) as client:
        response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["missing_topics"] == ["dlq"]


def test_openapi_documents_the_events_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/events"]["post"]
    assert "application/x-ndjson" in operation["requestBody"]["content"]
    assert any(p["name"] == "write_key" for p in operation["parameters"])
