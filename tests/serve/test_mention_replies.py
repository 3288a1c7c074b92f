"""Mentions over HTTP: a post that mentions the assistant's handle gets exactly one reply in its thread, written
by a model trained to use the tools (tests/tool_model.py); its own posts and a handle inside a word get none;
GET /v1/posts/{id} and /metrics show the state; and through the CLI (`colossus serve --handle NAME`), every
acknowledged mention is answered exactly once across a SIGKILL and a restart. Every wait polls with a
deadline."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import tool_model as tm

from colossus.serve.metrics import parse_metrics

DEADLINE = 120.0  # seconds: a bound for a broken worker, not a speed
Q = tm.RECENT_Q  # what the model learnt to answer from a search, citing the post it found


def mention(pid: str, author: str, text: str, reply_to: str | None = None) -> dict:
    return {"id": pid, "author": author, "created_at": "2026-12-01T09:00:00Z", "text": text, "reply_to": reply_to}


def replies(url: str, pid: str) -> list[dict]:
    """The posts of pid's thread that reply to it."""
    r = httpx.get(f"{url}/v1/posts/{pid}", timeout=30)
    assert r.status_code == 200, r.text
    return [p for p in r.json()["thread"] if p["reply_to"] == pid]


def state(url: str, pid: str) -> dict | None:
    return httpx.get(f"{url}/v1/posts/{pid}", timeout=30).json()["mention"]


def mentions_metric(url: str) -> dict[str, float]:
    m = parse_metrics(httpx.get(f"{url}/metrics", timeout=30).text)
    return {s: m[f'colossus_mentions{{state="{s}"}}'] for s in ("pending", "answered", "failed")}


def until(get, ok, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while not ok(value := get()):
        assert time.monotonic() < deadline, value
        time.sleep(0.05)
    return value


def ingest(url: str, *posts: dict) -> None:
    r = httpx.post(f"{url}/v1/posts", json={"posts": list(posts)}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def url(live_server, tool_model_dir):
    with live_server(model=tool_model_dir) as u:
        ingest(u, tm.POST.to_dict())
        yield u


def test_a_mention_gets_one_reply_in_its_thread_and_the_assistants_own_posts_none(url):
    ingest(url, mention("own", "colossus", f"@colossus {Q}"),  # by the assistant itself
           mention("mail", "alice", "write to ask@colossus.com for a demo"),  # a handle inside a word
           mention("m1", "alice", f"@Colossus {Q}"))
    (reply,) = until(lambda: replies(url, "m1"), lambda r: len(r) > 0)
    assert (reply["id"], reply["author"]) == ("m1-reply", "colossus")
    assert reply["text"] == f"@alice {tm.RECENT_A}\n\n[1] /posts/{tm.POST.id}"  # the post found, cited
    s = state(url, "m1")
    assert (s["state"], s["reply_id"], s["attempts"], s["error"]) == ("answered", "m1-reply", 1, None)
    assert state(url, "own") is None and state(url, "mail") is None  # never mentions: no reply can come
    assert replies(url, "own") == [] and replies(url, "mail") == []
    assert state(url, "m1-reply") is None  # the reply mentions @alice, not the assistant

    ingest(url, mention("m1", "alice", f"@colossus {Q} again"),  # the same id again: stored before, no mention
           mention("m2", "bob", f"@colossus {tm.UNKNOWN_Q}", reply_to="m1-reply"))  # a reply in its thread
    (second,) = until(lambda: replies(url, "m2"), lambda r: len(r) > 0)
    assert second["author"] == "colossus" and second["text"].startswith("@bob ")
    assert len(replies(url, "m1")) == 1  # m2 was answered after m1 came again: m1 still has one reply
    assert [p["id"] for p in httpx.get(f"{url}/v1/posts/m2").json()["thread"]] == ["m1", "m1-reply", "m2", "m2-reply"]
    counts = mentions_metric(url)
    assert counts == {"pending": 0, "answered": 2, "failed": 0}
    metrics = parse_metrics(httpx.get(f"{url}/metrics").text)
    assert metrics['colossus_tool_calls_total{tool="search"}'] >= 1  # the replies' searches are counted


def test_acknowledged_mentions_are_answered_exactly_once_across_a_sigkill_and_a_restart(tool_model_dir, tmp_path):
    """Four clients ingest batches through the CLI server (`--handle ask_ostra`); the first batches of each carry
    a mention. Once some mentions are answered and others still pending, the server is killed with SIGKILL while
    the clients still ingest, then started again on the same feed: every acknowledged mention gets exactly one
    reply, and no post gets two."""
    from cli_server import CliServer

    args = ["--model", str(tool_model_dir), "--db", str(tmp_path / "conv.db"), "--feed", str(tmp_path / "feed"),
            "--kernel", "torch", "--handle", "ask_ostra"]
    acked: list[str] = []  # the mentions whose ingest answered 200
    lock = threading.Lock()

    def client(c: int, url: str) -> None:
        for b in range(100_000):
            batch = [mention(f"c{c}-b{b}-{i}", f"client{c}", f"client{c} batch{b} post{i}") for i in range(5)]
            if b < 6:  # the first six batches carry a mention; the rest keep the server busy ingesting
                batch[0]["text"] = f"@Ask_Ostra {Q}"
            try:
                r = httpx.post(f"{url}/v1/posts", json={"posts": batch}, timeout=30)
            except httpx.TransportError:
                return  # the server is gone: this batch was never acknowledged
            if r.status_code != 200:
                return
            if b < 6:
                with lock:
                    acked.append(batch[0]["id"])

    with CliServer(args, tmp_path / "serve.log") as s:
        assert "answering the feed's mentions of @ask_ostra" in s.wait_log("answering the feed's mentions")
        ingest(s.url, tm.POST.to_dict())
        threads = [threading.Thread(target=client, args=(c, s.url)) for c in range(4)]
        for t in threads:
            t.start()
        at_kill = until(lambda: mentions_metric(s.url), lambda m: m["answered"] >= 1 and m["pending"] >= 1,
                        timeout=300)
        s.kill()
        for t in threads:
            t.join(60)
    with lock:
        done = list(acked)
    assert done and at_kill["failed"] == 0

    with CliServer(args, tmp_path / "serve.log") as s:
        final = until(lambda: mentions_metric(s.url), lambda m: m["pending"] == 0, timeout=600)
        assert final["failed"] == 0 and final["answered"] >= len(done)
        for pid in done:
            (reply,) = replies(s.url, pid)
            assert (reply["id"], reply["author"]) == (f"{pid}-reply", "ask_ostra") and reply["text"].startswith(
                f"@client{pid.split('-')[0][1:]} ")
            assert state(s.url, pid)["state"] == "answered"
        by_reply_to: dict[str, int] = {}  # every reply of the assistant in the feed, by the post it answers
        before = None
        while True:
            page = httpx.get(f"{s.url}/v1/posts", params={"limit": 100, **({"before": before} if before else {})},
                             timeout=30).json()
            for p in page["data"]:
                if p["author"] == "ask_ostra":
                    by_reply_to[p["reply_to"]] = by_reply_to.get(p["reply_to"], 0) + 1
            if not page["has_more"]:
                break
            before = page["last_id"]
        assert set(done) <= set(by_reply_to) and set(by_reply_to.values()) == {1}
        assert len(by_reply_to) == final["answered"]
