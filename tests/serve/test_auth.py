"""API keys (401) and the per-key token bucket (429 with Retry-After)."""

from __future__ import annotations

import httpx
import pytest

from colossus.errors import ColossusError
from colossus.serve.auth import TokenBucket, keys_from, parse_rate

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")

KEYS = ["key-one", "key-two", "key-three"]


@pytest.fixture(scope="module")
def url(live_server):
    with live_server(api_keys=KEYS, rate_limit=3) as u:
        yield u


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_key_required_on_api_routes(url, model_name):
    for headers in ({}, bearer("wrong"), {"Authorization": "key-one"}, {"Authorization": "Basic key-one"}):
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/tokenize"),
                             ("GET", "/v1/conversations"), ("GET", "/v1/nowhere")):
            r = httpx.request(method, url + path, headers=headers, json={})
            assert r.status_code == 401, (headers, path)
            err = r.json()["error"]
            assert err["type"] == "authentication_error" and err["code"] == "invalid_api_key"
            assert "key-one" not in r.text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    for key in KEYS:
        assert httpx.get(f"{url}/v1/models", headers=bearer(key)).json()["data"][0]["id"] == model_name


def test_open_routes_need_no_key(url):
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200
    assert httpx.get(f"{url}/").status_code == 200


def test_rate_limit_per_key(url, model_name):
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="key-two", max_retries=0)
    for _ in range(3):  # a burst of the whole bucket passes
        client.completions.create(model=model_name, prompt="x", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as e:
        client.completions.create(model=model_name, prompt="x", max_tokens=1)
    retry = int(e.value.response.headers["retry-after"])
    assert 1 <= retry <= 20  # 3 a minute: one request every 20 s
    assert e.value.code == "rate_limit_exceeded"
    r = httpx.post(f"{url}/tokenize", headers=bearer("key-two"), json={"prompt": "x"})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    # other keys have their own buckets; storage routes are not rate-limited
    assert httpx.post(f"{url}/tokenize", headers=bearer("key-three"), json={"prompt": "x"}).status_code == 200
    assert httpx.get(f"{url}/v1/conversations", headers=bearer("key-two")).status_code == 200
    metrics = httpx.get(f"{url}/metrics").text
    assert 'colossus_http_requests_total{endpoint="/v1/completions",status="429"} 1' in metrics
    assert "key-two" not in metrics


def test_token_bucket_refills():
    now = [0.0]
    b = TokenBucket(capacity=2, rate=1.0, clock=lambda: now[0])
    assert [b.take(), b.take()] == [0.0, 0.0]
    assert b.take() == pytest.approx(1.0)
    now[0] = 0.5
    assert b.take() == pytest.approx(0.5)
    now[0] = 1.0
    assert b.take() == 0.0
    now[0] = 100.0  # refills up to the capacity, not beyond
    assert [b.take(), b.take()] == [0.0, 0.0] and b.take() > 0


def test_keys_and_rate_parsing():
    assert keys_from(["a", " b "], "c, a,,d") == ["a", "b", "c", "d"]
    assert keys_from([], None) == []
    assert parse_rate("60/min") == 60 and parse_rate("5") == 5 and parse_rate(None) is None
    for bad in ("fast", "0/min", "-3", "10/hour"):
        with pytest.raises(ColossusError):
            parse_rate(bad)
