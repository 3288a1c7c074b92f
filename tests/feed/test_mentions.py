"""Mentions of the assistant: which posts mention its handle (X's rules), and the store's `mentions` table:
written with the post, kept across a reopening and a SIGKILL, answered once by a reply stored in the same
transaction, failed after its last attempt, removed with its post."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys

import pytest

from colossus.feed.feed import Feed
from colossus.feed.mentions import is_mention, mentioned, reply_id, strip_handle
from colossus.feed.post import ID, FeedError, Post


def post(pid: str, text: str, author: str = "ann", reply_to: str | None = None) -> Post:
    return Post(pid, author, dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc), text, reply_to)


def reply_to(p: Post, text: str = "Ostra Labs [1].\n\n[1] /posts/0", author: str = "colossus") -> Post:
    return Post(reply_id(p.id), author, dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone.utc), text, p.id)


@pytest.fixture
def feed(tmp_path):
    f = Feed(tmp_path / "feed")
    yield f
    f.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("@colossus where does Pella Vorn work?", True),
    ("where does Pella Vorn work, @Colossus?", True),  # case does not matter
    ("(@COLOSSUS) is this true", True),
    ("@colossus.", True),
    ("@colossus: is this true", True),
    ("hey\n@colossus", True),
    ("write to email@colossus.com", False),  # inside a word: an address, not a mention
    ("x@colossus", False),
    ("é@colossus", False),  # a word character of any script
    ("@colossus_bot is another account", False),
    ("@colossusabcdefgh is 16 characters, no handle", False),
    ("colossus without its @", False),
    ("@ colossus", False),
])
def test_a_mention_is_the_handle_after_an_at_sign_not_inside_a_word(text, expected):
    assert is_mention(post("1", text), "colossus") is expected


def test_the_handles_a_text_mentions_and_the_question_left_without_the_assistants():
    assert mentioned("@Pella and @colossus, @a_b_c! mail@x.org @sixteen_chars_xx") == ["pella", "colossus", "a_b_c"]
    assert strip_handle("@colossus where does Pella Vorn work now?", "colossus") == "where does Pella Vorn work now?"
    assert strip_handle("Hey @Colossus, is this true?", "colossus") == "Hey is this true?"
    assert strip_handle("@colossus: @pella said so", "colossus") == "@pella said so"
    assert strip_handle("@colossus", "colossus") == "@colossus"  # nothing else: the text as it is


def test_the_assistant_never_answers_itself_nor_a_reply_of_its_own():
    assert not is_mention(post("1", "@colossus see above", author="colossus"), "colossus")
    assert not is_mention(post("1", "@colossus see above", author="Colossus"), "colossus")
    assert is_mention(post("1", "@pella asked @ostra_bot", author="colossus"), "ostra_bot")  # another's handle
    mention = post("1", "@colossus is this true?")
    own = reply_to(mention, "@ann @colossus said it is", author="old_handle")  # its reply, under an older handle
    assert not is_mention(own, "colossus")
    assert is_mention(post("2", "@colossus and you?", reply_to="1"), "colossus")  # a user's reply to it is one


def test_a_replys_id_is_derived_from_the_mentions_and_is_a_valid_id():
    assert reply_id("1870") == "1870-reply"
    long = "x" * 64
    assert reply_id(long) == reply_id(long) != reply_id("y" * 64) and ID.fullmatch(reply_id(long))
    assert len(reply_id("z" * 60)) <= 64 and ID.fullmatch(reply_id("z" * 60))


def test_a_mention_is_stored_with_its_post_once_in_order_and_none_for_other_posts(feed):
    feed.ingest([post("1", "@colossus first?"), post("2", "no mention"), post("3", "mail@colossus.com"),
                 post("4", "@colossus second?"), post("5", "@colossus mine", author="colossus")])
    feed.ingest([post("1", "@colossus the same id again"), post("0", "@colossus third?")])
    assert [m.post_id for m in feed.store.pending_mentions()] == ["1", "4", "0"]  # the order they were stored
    assert [feed.mention(i) for i in ("2", "3", "5")] == [None] * 3
    m = feed.mention("1")
    assert (m.state, m.reply_id, m.attempts, m.error) == ("pending", None, 0, None)
    assert feed.store.mention_counts() == {"pending": 3, "answered": 0, "failed": 0}
    assert feed.permalink("1")["mention"]["state"] == "pending" and feed.permalink("2")["mention"] is None


def test_the_handle_is_the_feeds_and_is_checked(tmp_path):
    f = Feed(tmp_path / "feed", handle="@Ostra_Bot")
    try:
        f.ingest([post("1", "@colossus hi"), post("2", "@ostra_bot hi")])
        assert [m.post_id for m in f.store.pending_mentions()] == ["2"] and f.handle == "Ostra_Bot"
    finally:
        f.close()
    with pytest.raises(FeedError, match="handle"):
        Feed(tmp_path / "other", handle="not a handle")


def test_answering_stores_the_reply_and_marks_the_mention_in_one_step_once(feed):
    mention = post("1", "@colossus where does Pella Vorn work?")
    called = []
    feed.on_mention = lambda: called.append(1)
    feed.ingest([mention, post("2", "no mention")])
    feed.ingest([post("3", "no mention either")])
    assert called == [1]  # once per ingest that stored a mention
    assert feed.store.start_mention("1") == 1
    reply = reply_to(mention, "@ann Ostra Labs [1].\n\n[1] /posts/9")
    assert feed.answer_mention("1", reply)
    m = feed.mention("1")
    assert (m.state, m.reply_id, m.attempts) == ("answered", reply.id, 1)
    assert feed.get(reply.id) == reply and [p.id for p in feed.thread("1")] == ["1", reply.id]
    assert [p.id for p, _ in feed.search("ostra labs")] == [reply.id]  # indexed, as an ingested post is
    assert feed.added_after(0)[-1] == (feed.store.last_change(), reply)  # in the log: the live stream sends it
    again = reply_to(mention, "@ann a second, different reply")
    assert not feed.answer_mention("1", again) and feed.get(reply.id).text == reply.text  # answered: no second
    assert feed.store.start_mention("1") is None and feed.store.pending_mentions() == []
    assert feed.store.mention_counts() == {"pending": 0, "answered": 1, "failed": 0}
    assert not is_mention(feed.get(reply.id), feed.handle)


def test_a_reply_stored_before_answers_the_mention_and_a_post_that_took_its_id_fails_it(feed):
    a, b = post("a", "@colossus one?"), post("b", "@colossus two?")
    feed.ingest([a, b, reply_to(a)])  # a feed imported with its replies
    assert feed.answer_mention("a", reply_to(a, "written again")) and feed.get(reply_id("a")).text == reply_to(a).text
    feed.ingest([Post(reply_id("b"), "mallory", a.created_at, "I took the reply's id", None)])
    assert not feed.answer_mention("b", reply_to(b))
    m = feed.mention("b")
    assert m.state == "failed" and "taken" in m.error and feed.get(reply_id("b")).author == "mallory"


def test_a_mention_is_failed_after_its_last_attempt_and_an_attempt_stopped_is_not_counted(feed):
    feed.ingest([post("1", "@colossus ?")])
    assert feed.store.start_mention("1") == 1
    feed.store.fail_mention("1", "the model wrote no reply", final=False)
    assert feed.mention("1").state == "pending" and feed.mention("1").error == "the model wrote no reply"
    assert feed.store.start_mention("1") == 2
    feed.store.undo_attempt("1")  # the server stopped it: not a failure
    assert feed.store.start_mention("1") == 2
    feed.store.fail_mention("1", "still nothing", final=True)
    m = feed.mention("1")
    assert (m.state, m.attempts, m.error) == ("failed", 2, "still nothing")
    assert feed.store.start_mention("1") is None and not feed.answer_mention("1", reply_to(post("1", "x")))
    assert feed.store.mention_counts() == {"pending": 0, "answered": 0, "failed": 1}


def test_a_mention_goes_with_its_post(feed):
    feed.ingest([post("1", "@colossus ?"), post("2", "@colossus ?")])
    assert feed.delete("1") and feed.mention("1") is None
    assert [m.post_id for m in feed.store.pending_mentions()] == ["2"]


def test_mentions_survive_reopening_the_feed(tmp_path):
    f = Feed(tmp_path / "feed")
    f.ingest([post("1", "@colossus one?"), post("2", "@colossus two?")])
    f.store.start_mention("1")
    f.answer_mention("1", reply_to(post("1", "x")))
    f.close()
    g = Feed(tmp_path / "feed")
    try:
        assert g.mention("1").state == "answered" and g.mention("1").reply_id == reply_id("1")
        assert [m.post_id for m in g.store.pending_mentions()] == ["2"]
    finally:
        g.close()


CHILD = """
import datetime as dt, sys
from colossus.feed.feed import Feed
from colossus.feed.post import Post
f = Feed(sys.argv[1])
t = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
for i in range(100_000):
    f.ingest([Post(f"m{i}", "ann", t, f"@colossus question {i}?"), Post(f"p{i}", "ann", t, "no mention")])
    print(i, flush=True)
"""


def test_mentions_acknowledged_before_a_sigkill_are_pending_after_it(tmp_path):
    """A writer is killed (SIGKILL) after some ingests were acknowledged: each of their mentions is pending
    when the feed is opened again, and no post without one has a mention."""
    root = tmp_path / "feed"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    acked = [int(proc.stdout.readline()) for _ in range(20)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    f = Feed(root)
    try:
        pending = [m.post_id for m in f.store.pending_mentions(100_000)]
        assert pending[:len(acked)] == [f"m{i}" for i in acked]
        assert all(p.startswith("m") and f.get(p) is not None for p in pending)
    finally:
        f.close()
