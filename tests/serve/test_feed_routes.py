"""The feed over HTTP: POST /v1/posts (one post or a batch, idempotent), GET /v1/posts/search with its
filters, GET /v1/posts/{id} with the thread, and 4xx with an OpenAI-style body for bad input."""

from __future__ import annotations

import httpx
import pytest

P1 = {"id": "1", "author": "@pella", "created_at": "2026-11-30T09:00:00Z", "text": "Pella Vorn joined Ostra Labs."}
P2 = {"id": "2", "author": "news", "created_at": "2026-12-01T10:00:00Z", "text": "Ostra Labs hires.", "reply_to": "1"}


@pytest.fixture(scope="module")
def url(live_server):
    with live_server(wait_ready=False) as u:
        yield u


def test_a_post_is_searchable_when_its_ingest_answers_and_ingest_is_idempotent(url):
    r = httpx.post(f"{url}/v1/posts", json=P1)
    assert r.status_code == 200, r.text
    assert r.json() == {"object": "list", "data": [{"id": "1", "created": True}], "added": 1, "existing": 0}
    hits = httpx.get(f"{url}/v1/posts/search", params={"q": "ostra labs"}).json()["data"]
    assert [h["id"] for h in hits] == ["1"] and hits[0]["author"] == "pella" and hits[0]["score"] > 0
    r = httpx.post(f"{url}/v1/posts", json={"posts": [P1, P2]})
    assert r.json()["data"] == [{"id": "1", "created": False}, {"id": "2", "created": True}]
    assert (r.json()["added"], r.json()["existing"]) == (1, 1)


def test_search_filters_and_a_post_with_its_thread(url):
    httpx.post(f"{url}/v1/posts", json={"posts": [P1, P2]})
    search = f"{url}/v1/posts/search"
    assert [h["id"] for h in httpx.get(search, params={"q": "ostra", "from_date": "2026-12-01"}).json()["data"]] \
        == ["2"]
    assert [h["id"] for h in httpx.get(search, params={"q": "ostra", "to_date": "2026-11-30"}).json()["data"]] \
        == ["1"]  # a date alone: to the end of that day
    assert [h["id"] for h in httpx.get(search, params={"q": "ostra", "author": ["@news"]}).json()["data"]] == ["2"]
    assert [h["id"] for h in httpx.get(search, params={"q": "ostra", "excluded_author": ["news"]}).json()["data"]] \
        == ["1"]
    got = httpx.get(f"{url}/v1/posts/2").json()
    assert got["post"]["id"] == "2" and [p["id"] for p in got["thread"]] == ["1", "2"]


@pytest.mark.parametrize("method,path,body,params,status,param", [
    ("POST", "/v1/posts", {**P1, "created_at": "soon"}, None, 400, None),
    ("POST", "/v1/posts", {**P1, "id": "a b"}, None, 400, "id"),
    ("POST", "/v1/posts", {"posts": [P1, {**P2, "reply_to": "2"}]}, None, 400, "posts.1"),
    ("POST", "/v1/posts", {"posts": []}, None, 400, "posts"),
    ("POST", "/v1/posts", [P1], None, 400, None),
    ("GET", "/v1/posts/search", None, {"q": "x", "from_date": "2026-13-01"}, 400, "from_date"),
    ("GET", "/v1/posts/search", None, {"q": "x", "author": "no spaces allowed"}, 400, "author"),
    ("GET", "/v1/posts/search", None, {"q": "?!"}, 400, "q"),
    ("GET", "/v1/posts/search", None, {"q": "x" * 60_000}, 400, "q"),  # httpx refuses longer URLs
    ("GET", "/v1/posts/search", None, {"q": "x", "limit": 101}, 400, "limit"),
    ("GET", "/v1/posts/search", None, {}, 400, "q"),
    ("GET", "/v1/posts/nope", None, None, 404, "post_id"),
])
def test_bad_input_is_a_4xx_with_an_openai_style_body(url, method, path, body, params, status, param):
    r = httpx.request(method, f"{url}{path}", json=body, params=params)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error"  # as OpenAI types a 404 too
    if param is not None:
        assert err["param"] == param


def test_a_second_server_on_the_same_feed_is_told_to_take_its_own(model_dir, tmp_path):
    from colossus.errors import ColossusError
    from colossus.serve.app import ServeConfig, create_app

    first = create_app(ServeConfig(model=model_dir, db=tmp_path / "a.db", feed=tmp_path / "feed"))
    try:
        with pytest.raises(ColossusError, match="another server .* --feed DIR"):
            create_app(ServeConfig(model=model_dir, db=tmp_path / "b.db", feed=tmp_path / "feed"))
    finally:
        first.state.feed.close()
        first.state.store.close()
