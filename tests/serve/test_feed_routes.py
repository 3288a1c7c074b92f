"""The feed over HTTP: POST /v1/posts (one post or a batch, idempotent), GET /v1/posts (the newest, paged),
GET /v1/posts/search with its filters, GET /v1/posts/stream (each post as it is stored, resumable, bounded),
GET /v1/posts/{id} with the thread and notes, the notes routes, and 4xx with an OpenAI-style body for bad
input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator

import httpx
import pytest

P1 = {"id": "1", "author": "@pella", "created_at": "2026-11-30T09:00:00Z", "text": "Pella Vorn joined Ostra Labs."}
P2 = {"id": "2", "author": "news", "created_at": "2026-12-01T10:00:00Z", "text": "Ostra Labs hires.", "reply_to": "1"}


MISLEADING = "MISINFORMED_OR_POTENTIALLY_MISLEADING"
NOTE = {"classification": MISLEADING, "summary": "Pella Vorn joined Ostra Labs in 2025.", "sources": ["/posts/2"]}
STREAM_TIMEOUT = httpx.Timeout(60)  # a bound for a broken server, not a speed (the stream pings every 15 s)


@pytest.fixture(scope="module")
def url(live_server):
    with live_server(wait_ready=False) as u:
        yield u


def events(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """The server-sent events of a stream's lines, as {field: value} (comments skipped; the retry field too)."""
    ev: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in ev:
                yield ev
            ev = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            ev[field] = value[1:] if value.startswith(" ") else value


def eventually(get, ok, timeout: float = 60.0):
    """get() again until ok(value) holds (within a generous deadline); the last value, for the assertion."""
    deadline = time.monotonic() + timeout
    while not ok(value := get()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ok(value), value
    return value


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
    ("POST", "/v1/posts", {**P1, "created_at": "soon"}, None, 400, "created_at"),
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
    ("POST", "/v1/posts", {**P1, "id": "stream"}, None, 400, "id"),  # /v1/posts/stream is the stream's route
    ("GET", "/v1/posts", None, {"limit": 0}, 400, "limit"),
    ("GET", "/v1/posts", None, {"before": "nope"}, 400, "before"),
    ("GET", "/v1/posts/stream", None, {"after": -1}, 400, "after"),
    ("GET", "/v1/posts/stream", None, {"after": "soon"}, 400, "after"),
    ("GET", "/v1/posts/nope/notes", None, None, 404, "post_id"),
    ("POST", "/v1/posts/nope/notes", NOTE, None, 404, "post_id"),
])
def test_bad_input_is_a_4xx_with_an_openai_style_body(url, method, path, body, params, status, param):
    r = httpx.request(method, f"{url}{path}", json=body, params=params)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error"  # as OpenAI types a 404 too
    if param is not None:
        assert err["param"] == param


@pytest.mark.parametrize("last_event_id", ["later", "-1", "1" * 30])
def test_the_stream_rejects_a_bad_last_event_id(url, last_event_id):
    r = httpx.get(f"{url}/v1/posts/stream", headers={"Last-Event-ID": last_event_id})
    assert r.status_code == 400 and r.json()["error"]["param"] == "Last-Event-ID"


def test_a_note_is_added_to_a_post_and_shown_with_it_and_its_thread(url):
    httpx.post(f"{url}/v1/posts", json={"posts": [P1, P2]})
    r = httpx.post(f"{url}/v1/posts/1/notes", json=NOTE)
    assert r.status_code == 200, r.text
    note = r.json()
    assert {k: note[k] for k in ("postId", "classification", "summary", "sources", "status", "author")} == {
        "postId": "1", **NOTE, "status": "NEEDS_MORE_RATINGS", "author": "colossus"}
    assert note["noteId"].isdigit() and note["createdAt"].endswith("Z")
    r = httpx.post(f"{url}/v1/posts/1/notes", json={**NOTE, "classification": "NOT_MISLEADING", "author": "@news",
                                                    "status": "CURRENTLY_RATED_HELPFUL",
                                                    "sources": ["https://ostra.example/2025/hires"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert (second["author"], second["status"]) == ("news", "CURRENTLY_RATED_HELPFUL")
    got = httpx.get(f"{url}/v1/posts/1").json()
    assert got["post"]["id"] == "1" and got["notes"][-2:] == [note, second]
    reply = httpx.get(f"{url}/v1/posts/2").json()
    assert reply["notes"] == [] and [p["id"] for p in reply["thread"]] == ["1", "2"]
    assert reply["thread"][0]["notes"][-2:] == [note, second] and reply["thread"][1]["notes"] == []
    assert httpx.get(f"{url}/v1/posts/1/notes").json()["data"][-2:] == [note, second]


@pytest.mark.parametrize("change,param", [
    ({"classification": "FALSE"}, "classification"),
    ({"summary": ""}, "summary"),
    ({"summary": None}, "summary"),
    ({"sources": []}, "sources"),
    ({"sources": ["/posts/2", "javascript:alert(1)"]}, "sources.1"),
    ({"sources": "/posts/2"}, "sources"),
    ({"status": "HELPFUL"}, "status"),
    ({"author": "no spaces"}, "author"),
])
def test_a_bad_note_is_a_400_naming_the_field(url, change, param):
    httpx.post(f"{url}/v1/posts", json=P1)
    count = len(httpx.get(f"{url}/v1/posts/1/notes").json()["data"])
    body = {k: v for k, v in {**NOTE, **change}.items() if v is not None}
    r = httpx.post(f"{url}/v1/posts/1/notes", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"
    assert len(httpx.get(f"{url}/v1/posts/1/notes").json()["data"]) == count  # nothing stored


def test_the_newest_posts_come_first_and_page_on(url):
    posts = [{"id": f"l{i}", "author": "lister", "created_at": f"2031-01-0{i}T00:00:00Z", "text": f"list {i}"}
             for i in range(1, 6)]  # newer than any other post of this module
    httpx.post(f"{url}/v1/posts", json={"posts": posts})
    page = httpx.get(f"{url}/v1/posts", params={"limit": 2}).json()
    assert [p["id"] for p in page["data"]] == ["l5", "l4"] and page["object"] == "list"
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("l5", "l4", True)
    assert page["data"][0] == {**posts[4], "author": "lister", "reply_to": None, "lang": None}
    after = httpx.get(f"{url}/v1/posts", params={"limit": 3, "before": page["last_id"]}).json()
    assert [p["id"] for p in after["data"]] == ["l3", "l2", "l1"]
    assert after["last_seq"] == page["last_seq"]  # nothing stored between the two pages


def test_the_stream_sends_each_post_as_it_is_stored_and_resumes_where_a_client_left(url):
    page = httpx.get(f"{url}/v1/posts", params={"limit": 1}).json()
    post = {"author": "streamer", "created_at": "2026-12-05T00:00:00Z"}
    httpx.post(f"{url}/v1/posts", json={**post, "id": "s1", "text": "stored between the page and the stream"})
    with httpx.stream("GET", f"{url}/v1/posts/stream", params={"after": page["last_seq"]},
                      timeout=STREAM_TIMEOUT) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        received = events(r.iter_lines())
        first = next(received)  # replayed from the store: the page's last_seq is where the stream starts
        assert json.loads(first["data"])["id"] == "s1" and int(first["id"]) > page["last_seq"]
        httpx.post(f"{url}/v1/posts", json={"posts": [{**post, "id": "s1", "text": "again"},
                                                      {**post, "id": "s2", "text": "stored while streaming"}]})
        second = next(received)  # live; s1 again is no news
        assert json.loads(second["data"]) == {**post, "id": "s2", "text": "stored while streaming", "reply_to": None,
                                              "lang": None}
        assert int(second["id"]) > int(first["id"])
    httpx.post(f"{url}/v1/posts", json={**post, "id": "s3", "text": "stored while no one listened"})
    with httpx.stream("GET", f"{url}/v1/posts/stream", headers={"Last-Event-ID": first["id"]},
                      timeout=STREAM_TIMEOUT) as r:  # as EventSource reconnects
        received = events(r.iter_lines())
        assert [json.loads(next(received)["data"])["id"] for _ in range(2)] == ["s2", "s3"]


def test_streams_are_bounded_and_a_closed_one_frees_its_place(live_server):
    apps = []
    with live_server(prepare=apps.append) as url:
        broadcast = apps[0].state.feed.broadcast
        broadcast.max_subscribers = 1
        with httpx.stream("GET", f"{url}/v1/posts/stream", timeout=STREAM_TIMEOUT) as r:
            assert r.status_code == 200
            lines = r.iter_lines()  # kept: an iterator dropped closes its response
            assert next(lines) == "retry: 2000"  # the first line: this client is listening
            assert len(broadcast) == 1
            full = httpx.get(f"{url}/v1/posts/stream", timeout=10)
            assert full.status_code == 503 and full.json()["error"]["code"] == "too_many_streams"
            assert int(full.headers["Retry-After"]) > 0
        eventually(lambda: len(broadcast), lambda n: n == 0)  # the client went away: its place is free
        with httpx.stream("GET", f"{url}/v1/posts/stream", timeout=STREAM_TIMEOUT) as r:
            assert r.status_code == 200


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
