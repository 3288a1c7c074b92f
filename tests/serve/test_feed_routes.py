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


def test_posts_acknowledged_before_a_sigkill_are_stored_and_found_after_a_restart(model_dir, tmp_path):
    """Four clients ingest batches concurrently; the server is killed with SIGKILL once each has had some
    acknowledged, then started again on the same feed: every acknowledged post is there and found by search.
    Nothing waits on how fast a request is: the kill comes after the acknowledgements are counted."""
    import threading

    from cli_server import CliServer

    args = ["--model", str(model_dir), "--db", str(tmp_path / "conv.db"), "--feed", str(tmp_path / "feed"),
            "--kernel", "torch"]
    acked: list[str] = []
    lock, enough = threading.Lock(), threading.Event()

    def client(c: int, url: str) -> None:
        for b in range(10_000):
            batch = [{"id": f"c{c}-b{b}-{i}", "author": f"client{c}", "created_at": "2026-12-01T00:00:00Z",
                      "text": f"client{c} batch{b} vorn"} for i in range(20)]
            try:
                r = httpx.post(f"{url}/v1/posts", json={"posts": batch}, timeout=30)
            except httpx.TransportError:
                return  # the server is gone: this batch was never acknowledged
            if r.status_code != 200:
                return
            with lock:
                acked.extend(p["id"] for p in batch)
                if len(acked) >= 4 * 5 * 20:
                    enough.set()

    with CliServer(args, tmp_path / "serve.log") as s:
        threads = [threading.Thread(target=client, args=(c, s.url)) for c in range(4)]
        for t in threads:
            t.start()
        assert enough.wait(300), "the clients got too few acknowledgements"
        s.kill()
        for t in threads:
            t.join(60)
    with lock:
        done = list(acked)
    batches: dict[tuple[int, int], set[str]] = {}
    for pid in done:
        c, b, _ = pid.split("-")
        batches.setdefault((int(c[1:]), int(b[1:])), set()).add(pid)
    assert all(len(ids) == 20 for ids in batches.values())  # a batch is acknowledged whole or not at all
    with CliServer(args, tmp_path / "serve.log") as s:
        for (c, b), ids in sorted(batches.items()):
            assert httpx.get(f"{s.url}/v1/posts/{min(ids)}").status_code == 200
            hits = httpx.get(f"{s.url}/v1/posts/search",
                             params={"q": f"batch{b}", "author": f"client{c}", "limit": 40}).json()["data"]
            assert {h["id"] for h in hits} == ids, (c, b)
