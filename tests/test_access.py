"""API keys, CORS and the rate limit (web/access.py), each off unless its setting is given."""

from __future__ import annotations

import pytest

from web.access import TokenBuckets, split
from web.app import create_app
from webutil import IBM_ID


@pytest.fixture
def app_with(web_settings, web_service):
    def make(**settings):
        return create_app(web_settings.with_overrides(**settings), web_service).test_client()

    return make


def test_everything_is_open_by_default(client) -> None:
    response = client.get("/api/search?q=robots", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    for _ in range(50):
        assert client.get("/api/health").status_code == 200


# -- API keys -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["/api/search?q=robots", f"/api/articles/{IBM_ID}", f"/api/articles/{IBM_ID}/related", "/api/stats"]
)
def test_keys_are_required_on_the_api(app_with, url: str) -> None:
    client = app_with(api_keys="k-one, k-two")
    refused = client.get(url)
    assert refused.status_code == 401 and refused.get_json()["error"]["type"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(url, headers={"X-API-Key": "k-wrong"}).status_code == 401
    assert client.get(url, headers={"X-API-Key": "k-one"}).status_code == 200
    assert client.get(url, headers={"Authorization": "Bearer k-two"}).status_code == 200
    assert client.get(url, headers={"Authorization": "Basic k-two"}).status_code == 401


def test_keys_leave_health_openapi_and_the_pages_open(app_with) -> None:
    client = app_with(api_keys="k-one")
    for url in ("/api/health", "/api/health/ready", "/api/openapi.json", "/", "/search?q=robots"):
        assert client.get(url).status_code == 200, url
    assert client.post("/api/related", json={"text": "robots"}).status_code == 401
    assert client.post("/api/related", json={"text": "robots"}, headers={"X-API-Key": "k-one"}).status_code == 200


def test_keys_can_be_a_yaml_list(tmp_path) -> None:
    from search.config import load_settings

    config = tmp_path / "search.yaml"
    config.write_text("api_keys:\n  - one\n  - two\n")
    assert split(load_settings(config).api_keys) == ("one", "two")


def test_settings_command_hides_the_keys(monkeypatch) -> None:
    from click.testing import CliRunner

    from search.cli import main

    monkeypatch.setenv("SEARCH_API_KEYS", "very-secret")
    output = CliRunner().invoke(main, ["settings"]).output
    assert "very-secret" not in output and "api_keys = '(set, hidden)'" in output


# -- CORS -------------------------------------------------------------------------------------
def test_cors_for_listed_origins_only(app_with) -> None:
    client = app_with(cors_origins="https://app.example, https://other.example", api_keys="k")
    good = {"Origin": "https://app.example", "X-API-Key": "k"}
    response = client.get("/api/search?q=robots", headers=good)
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in response.headers["Vary"]
    other = client.get("/api/search?q=robots", headers={"Origin": "https://evil.example", "X-API-Key": "k"})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]  # a cache must not hand this answer to a listed origin, or back
    page = client.get("/search?q=robots", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in page.headers  # the HTML pages are not an API


def test_cors_preflight_needs_no_key(app_with) -> None:
    client = app_with(cors_origins="https://app.example", api_keys="k")
    headers = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key",
    }
    response = client.options("/api/related", headers=headers)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "X-API-Key" in response.headers["Access-Control-Allow-Headers"]
    refused = client.get("/api/search?q=x", headers={"Origin": "https://app.example"})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_cors_any_origin(app_with) -> None:
    response = app_with(cors_origins="*").get("/api/health", headers={"Origin": "https://x.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# -- rate limit -------------------------------------------------------------------------------
def test_token_bucket() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: one token every half second
    assert buckets.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    now[0] += 100
    assert [buckets.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refilled to the burst, no more


def test_token_buckets_forget_idle_clients() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=1.0, burst=2, clock=lambda: now[0], max_clients=10)
    for n in range(10):
        buckets.take(f"c{n}")
    now[0] += 10  # every bucket has refilled
    buckets.take("new")
    assert len(buckets._buckets) == 1


def test_rate_limit_is_a_429_with_retry_after(app_with) -> None:
    client = app_with(rate_limit=0.01, rate_burst=2)
    assert [client.get("/api/search?q=robots").status_code for _ in range(2)] == [200, 200]
    limited = client.get("/api/search?q=robots")
    assert limited.status_code == 429 and limited.get_json()["error"]["type"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/search?q=robots").status_code == 429  # the pages count too
    assert client.get("/api/health").status_code == 200  # health checks never do


def test_rate_limit_per_key(app_with) -> None:
    client = app_with(rate_limit=0.01, rate_burst=1, api_keys="a,b")
    assert client.get("/api/search?q=x", headers={"X-API-Key": "a"}).status_code == 200
    assert client.get("/api/search?q=x", headers={"X-API-Key": "a"}).status_code == 429
    assert client.get("/api/search?q=x", headers={"X-API-Key": "b"}).status_code == 200
