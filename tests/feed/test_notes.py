"""Community notes: stored on a stored post only, each bad field named, a note acknowledged survives a SIGKILL
and a reopening of the feed, notes go with their post, and a post's permalink carries them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys

import pytest

from colossus.feed.feed import Feed
from colossus.feed.notes import ASSISTANT, MAX_SOURCES, MAX_SUMMARY, NEW_STATUS, Note
from colossus.feed.post import FeedError, Post, PostNotFound

MISLEADING = "MISINFORMED_OR_POTENTIALLY_MISLEADING"


def post(i, text="Pella Vorn joined Ostra Labs", reply_to=None, day=1) -> Post:
    return Post.from_dict({"id": str(i), "author": "ann", "created_at": f"2026-11-{day:02d}T12:00:00Z", "text": text,
                           "reply_to": reply_to})


@pytest.fixture
def feed(tmp_path):
    f = Feed(tmp_path / "feed")
    f.ingest([post(1), post(2, "She joined in 2025, not today", reply_to="1", day=2)])
    yield f
    f.close()


def test_a_note_on_a_stored_post_is_kept_with_x_s_fields(feed):
    before = dt.datetime.now(dt.timezone.utc)
    note = feed.add_note("1", MISLEADING, "She joined in 2025.", ["/posts/2", "https://ostra.example/news?id=7"])
    assert note.status == NEW_STATUS == "NEEDS_MORE_RATINGS" and note.author == ASSISTANT
    assert before - dt.timedelta(seconds=1) <= note.created_at <= dt.datetime.now(dt.timezone.utc)
    d = note.to_dict()
    assert set(d) == {"noteId", "postId", "classification", "summary", "sources", "status", "createdAt", "author"}
    assert d["postId"] == "1" and d["sources"] == ["/posts/2", "https://ostra.example/news?id=7"]
    assert d["createdAt"].endswith("Z") and d["noteId"].isdigit()
    second = feed.add_note("1", "NOT_MISLEADING", "The post is right.", ["/posts/2", "/posts/2"],
                           status="CURRENTLY_RATED_HELPFUL", author="@bob")
    assert second.sources == ("/posts/2",) and second.author == "bob" and second.status == "CURRENTLY_RATED_HELPFUL"
    assert int(second.note_id) > int(note.note_id)  # snowflakes: later notes sort after
    assert feed.notes("1") == [note, second] and feed.notes("2") == []


def test_a_note_on_a_post_not_stored_is_refused_and_nothing_is_kept(feed):
    with pytest.raises(PostNotFound, match="no post with id 'nope'") as e:
        feed.add_note("nope", MISLEADING, "x", ["/posts/1"])
    assert e.value.field == "post_id" and feed.notes("nope") == []
    assert feed.store._db.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0


@pytest.mark.parametrize("change,field,message", [
    ({"classification": "FALSE"}, "classification", "classification must be MISINFORMED_OR_POTENTIALLY_MISLEADING"),
    ({"summary": "  "}, "summary", "summary must be a non-empty string"),
    ({"summary": "x" * (MAX_SUMMARY + 1)}, "summary", f"more than {MAX_SUMMARY}"),
    ({"sources": []}, "sources", "sources must be a list of 1 to"),
    ({"sources": "/posts/2"}, "sources", "sources must be a list"),
    ({"sources": ["/posts/2"] * (MAX_SOURCES + 1)}, "sources", "sources must be a list"),
    ({"sources": ["/posts/2", "javascript:alert(1)"]}, "sources.1", "sources.1 must be an http(s) URL"),
    ({"sources": ["//evil.example/x"]}, "sources.0", "sources.0 must be"),
    ({"sources": ["https://user@evil.example/"]}, "sources.0", "sources.0 must be"),
    ({"sources": ["/posts/2\n"]}, "sources.0", "sources.0 must be"),
    ({"sources": ["/posts/2 and more"]}, "sources.0", "sources.0 must be"),
    ({"status": "HELPFUL"}, "status", "status must be one of NEEDS_MORE_RATINGS"),
    ({"author": "no spaces"}, "author", "author must be a handle"),
    ({"post_id": "a b"}, "post_id", "post_id must be a post id"),
])
def test_each_bad_field_is_named(feed, change, field, message):
    args = {"post_id": "1", "classification": MISLEADING, "summary": "She joined in 2025.", "sources": ["/posts/2"],
            **change}
    with pytest.raises(FeedError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        feed.add_note(**args)
    assert e.value.field == field
    assert feed.notes("1") == []


def test_notes_go_with_their_post_and_the_permalink_carries_them(feed):
    feed.ingest([post(3, "a reply to the reply", reply_to="2", day=3)])
    on_1 = feed.add_note("1", MISLEADING, "She joined in 2025.", ["/posts/2"])
    on_3 = feed.add_note("3", "NOT_MISLEADING", "Right.", ["/posts/1"])
    shown = feed.permalink("2")
    assert shown["post"]["id"] == "2" and shown["notes"] == []
    assert [(p["id"], [n["noteId"] for n in p["notes"]]) for p in shown["thread"]] == [
        ("1", [on_1.note_id]), ("2", []), ("3", [on_3.note_id])]
    assert feed.permalink("1")["notes"] == [on_1.to_dict()] and feed.permalink("nope") is None
    assert feed.delete("1")
    assert feed.notes("1") == [] and feed.notes("3") == [on_3]
    feed.ingest([post(1)])  # the same id again: a new post, without the old one's notes
    assert feed.notes("1") == []


def test_a_note_acknowledged_survives_reopening_the_feed(tmp_path):
    f = Feed(tmp_path / "feed")
    f.ingest([post(1)])
    note = f.add_note("1", MISLEADING, "She joined in 2025.", ["/posts/2"], author="pella")
    f.close()
    g = Feed(tmp_path / "feed")
    try:
        assert g.notes("1") == [note]
    finally:
        g.close()


CHILD = """
import sys
from colossus.feed.feed import Feed
from colossus.feed.post import Post
f = Feed(sys.argv[1])
f.ingest([Post.from_dict({"id": "1", "author": "ann", "created_at": "2026-11-01", "text": "vorn"})])
for i in range(100_000):
    n = f.add_note("1", "NOT_MISLEADING", f"note {i}", ["/posts/1"])
    print(n.note_id, flush=True)
"""


def test_notes_acknowledged_before_a_sigkill_are_there_after_it(tmp_path):
    """A writer is killed (SIGKILL) after some notes were acknowledged (add_note returned): every one of them is
    in the store when the feed is opened again."""
    root = tmp_path / "feed"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    acked = [proc.stdout.readline().strip() for _ in range(20)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    f = Feed(root)
    try:
        kept = {n.note_id for n in f.notes("1")}
        assert set(acked) <= kept, set(acked) - kept
    finally:
        f.close()


def test_a_note_made_by_hand_checks_its_time():
    with pytest.raises(FeedError, match="aware") as e:
        Note.new("1", MISLEADING, "x", ["/posts/1"], created_at=dt.datetime(2026, 11, 1))
    assert e.value.field == "created_at"
    at = dt.datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    n = Note.new("1", MISLEADING, "x", ["/posts/1"], created_at=at)
    assert n.to_dict()["createdAt"] == "2026-11-01T10:00:00.123Z"
