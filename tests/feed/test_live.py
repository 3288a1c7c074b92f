"""The live side of the feed: each ingest tells every listener of its new posts (never an id stored before), in
the store's order, with their change numbers; a listener past its bound loses posts to the store, from which
added_after reads them back; the number of listeners is bounded; and the newest posts page on without gaps."""

from __future__ import annotations

import pytest

from colossus.feed.feed import Feed
from colossus.feed.live import TooManySubscribers
from colossus.feed.post import Post, PostNotFound


def post(i, day=1, hour=12) -> Post:
    return Post.from_dict({"id": str(i), "author": "ann", "created_at": f"2026-11-{day:02d}T{hour:02d}:00:00Z",
                           "text": f"post {i}"})


@pytest.fixture
def feed(tmp_path):
    f = Feed(tmp_path / "feed")
    yield f
    f.close()


def test_every_listener_is_told_of_each_new_post_in_order(feed):
    woken = []
    a, b = feed.broadcast.subscribe(lambda: woken.append("a")), feed.broadcast.subscribe(lambda: woken.append("b"))
    feed.ingest([post(1), post(2)])
    feed.ingest([post(2), post(3)])  # 2 was stored before: not news
    got, lost = a.take()
    assert [(p.id) for _, p in got] == ["1", "2", "3"] and lost is None
    seqs = [s for s, _ in got]
    assert seqs == sorted(seqs) and seqs[-1] == feed.store.last_change()
    assert [p.id for _, p in b.take()[0]] == ["1", "2", "3"] and a.take() == ([], None)
    assert woken.count("a") == woken.count("b") == 2
    a.close()
    feed.ingest([post(4)])
    assert a.take() == ([], None) and [p.id for _, p in b.take()[0]] == ["4"]
    assert [(s, p.id) for s, p in feed.added_after(seqs[0])] == [(s, p.id) for s, p in got[1:]] + [
        (feed.store.last_change(), "4")]


def test_a_listener_past_its_bound_is_told_where_to_read_again(feed):
    feed.broadcast.max_pending = 5
    sub = feed.broadcast.subscribe(lambda: None)
    feed.ingest([post(i) for i in range(3)])
    feed.ingest([post(i) for i in range(3, 6)])  # 6 waiting: over the bound
    items, lost_after = sub.take()
    assert items == [] and lost_after is not None
    assert [p.id for _, p in feed.added_after(lost_after)] == [str(i) for i in range(6)]
    feed.ingest([post(6)])
    assert [p.id for _, p in sub.take()[0]] == ["6"]  # and it goes on


def test_the_listeners_are_bounded_and_closed_with_the_feed(tmp_path):
    f = Feed(tmp_path / "feed")
    f.broadcast.max_subscribers = 2
    first, second = f.broadcast.subscribe(lambda: None), f.broadcast.subscribe(lambda: None)
    with pytest.raises(TooManySubscribers):
        f.broadcast.subscribe(lambda: None)
    first.close()
    third = f.broadcast.subscribe(lambda: None)
    assert len(f.broadcast) == 2
    f.close()
    assert second.closed and third.closed and len(f.broadcast) == 0


def test_the_newest_posts_page_on_without_gaps_or_repeats(feed):
    # three posts in the same second: the order among them is the order they were stored in
    feed.ingest([post(1, day=1), post(2, day=3), post(3, day=2), post(4, day=2), post(5, day=2), post(6, day=4)])
    page = feed.recent(2)
    assert [p.id for p in page.posts] == ["6", "2"] and page.has_more and page.last_seq == feed.store.last_change()
    seen = [p.id for p in page.posts]
    while page.has_more:
        page = feed.recent(2, before=seen[-1])
        seen += [p.id for p in page.posts]
    assert seen == ["6", "2", "5", "4", "3", "1"]
    assert feed.recent(10, before="1").posts == [] and not feed.recent(10, before="1").has_more
    with pytest.raises(PostNotFound) as e:
        feed.recent(10, before="nope")
    assert e.value.field == "before"
