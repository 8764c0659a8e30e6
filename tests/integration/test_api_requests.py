"""Request handling of the read API on real Redis (a private, empty prefix): keys, 404s, 422s, pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from clickpulse.settings import Settings
from serving.app import create_app

READ = {"Authorization": "Bearer test-read-key"}


@pytest.fixture(scope="module")
def api(redis_url: str) -> Iterator[TestClient]:
    import uuid

    prefix = f"api-requests-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        REDIS_URL=redis_url,
        CLICKPULSE_REDIS_PREFIX=prefix,
        CLICKPULSE_LIVE_CHANNEL_PREFIX=prefix,
        CLICKPULSE_READ_KEYS="test-read-key, second-read-key, shared-key",
        CLICKPULSE_WRITE_KEYS="test-write-key,shared-key",
        CLICKPULSE_PUBLIC_COLLECTOR_URL="http://collector.example:8001/",
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer test-write-key"},
        {"Authorization": "Bearer shared-key"},  # listed as both: write keys never read
        {"Authorization": "Basic dGVzdC1yZWFkLWtleQ=="},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/v1/trending",
        "/v1/videos/v1/stats",
        "/v1/videos/v1",
        "/v1/users/u1/profile",
        "/v1/engagement",
        "/v1/live",
        "/v1/pages/config",
    ],
)
def test_missing_or_wrong_keys_get_401(api: TestClient, headers: dict[str, str], path: str) -> None:
    response = api.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or invalid read key"}


def test_read_keys_by_header_or_query(api: TestClient) -> None:
    assert api.get("/v1/trending", headers={"Authorization": "bearer second-read-key"}).status_code == 200
    assert api.get("/v1/trending?key=test-read-key").status_code == 200
    assert api.get("/v1/trending?key=test-write-key").status_code == 401
    # The header wins over the query parameter.
    assert api.get("/v1/trending?key=test-read-key", headers={"Authorization": "Bearer x"}).status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v1/trending?limit=0",
        "/v1/trending?limit=101",
        "/v1/trending?limit=ten",
        "/v1/engagement?window=2h",
        "/v1/engagement?window=",
        f"/v1/videos/{'v' * 129}/stats",
        f"/v1/users/{'u' * 129}/profile",
        "/v1/live?user_id=",
    ],
)
def test_bad_parameters_get_422(api: TestClient, path: str) -> None:
    response = api.get(path, headers=READ)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_unknown_ids_get_404(api: TestClient) -> None:
    for path in ("/v1/videos/nope/stats", "/v1/videos/nope", "/v1/users/nope/profile"):
        response = api.get(path, headers=READ)
        assert response.status_code == 404
        assert "nope" in response.json()["detail"]


def test_empty_store_answers_zeros_not_errors(api: TestClient) -> None:
    assert api.get("/v1/trending?limit=100", headers=READ).json()["items"] == []
    body = api.get("/v1/engagement?window=24h", headers=READ).json()
    assert body["overall"] == {
        "impressions": 0,
        "clicks": 0,
        "conversions": 0,
        "ctr": None,
        "conversion_rate": None,
    }


def test_pages_sdk_and_config(api: TestClient) -> None:
    for page in ("/dashboard", "/player"):
        response = api.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    sdk = api.get("/sdk/clickpulse.js")
    assert sdk.status_code == 200 and "export function createClient" in sdk.text
    assert sdk.headers["content-type"].startswith("text/javascript")
    config = api.get("/v1/pages/config", headers=READ).json()
    assert config["collector_url"] == "http://collector.example:8001"
    assert config["write_key"] == "shared-key"  # the first write key, sorted
    assert api.get("/", follow_redirects=False).headers["location"] == "/dashboard"


def test_openapi_documents_the_response_fields(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    stats = schema["components"]["schemas"]["VideoStats"]["properties"]
    for field in (
        "video_id",
        "clicks",
        "clicks_by_button",
        "impressions",
        "conversions",
        "ctr",
        "conversion_rate",
        "unique_users",
        "unique_users_approximate",
        "last_hour",
        "last_24h",
    ):
        assert field in stats
    assert "/bench/constant" not in schema["paths"]
    assert api.get("/bench/constant", headers=READ).status_code == 404
