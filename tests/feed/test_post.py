"""A post's fields are checked, each bad one named; times are kept in UTC."""

from __future__ import annotations

import datetime as dt

import pytest

from colossus.feed.post import MAX_TEXT, FeedError, Post, parse_time

GOOD = {"id": "1870", "author": "@pella", "created_at": "2026-11-30T09:00:00+02:00", "text": "Pella Vorn joined Ostra.",
        "reply_to": "1869", "lang": "pt-BR"}


def test_a_post_round_trips_in_utc_with_the_handle_bare():
    p = Post.from_dict(GOOD)
    assert p.author == "pella" and p.created_at == dt.datetime(2026, 11, 30, 7, tzinfo=dt.timezone.utc)
    assert p.to_dict() == {**GOOD, "author": "pella", "created_at": "2026-11-30T07:00:00Z"}
    assert Post.from_dict(p.to_dict()) == p
    assert Post.from_dict({**GOOD, "id": 1870, "reply_to": 1869}) == p  # numeric ids, as some clients send
    assert parse_time("2026-11-30") == dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)  # no zone: UTC


@pytest.mark.parametrize("change,message", [
    ({"id": "a b"}, "id must be"),
    ({"id": "1870\n"}, "id must be"),
    ({"id": "stream"}, "id 'stream' is reserved"),
    ({"id": "search"}, "id 'search' is reserved"),
    ({"id": None}, "needs id"),
    ({"author": "no spaces"}, "author must be a handle"),
    ({"author": "@" + "x" * 16}, "author must be a handle"),
    ({"created_at": "yesterday"}, "created_at must be an ISO 8601 time"),
    ({"created_at": 5}, "created_at must be an ISO 8601 time"),
    ({"text": "   "}, "text must be a non-empty string"),
    ({"text": "x" * (MAX_TEXT + 1)}, f"more than {MAX_TEXT}"),
    ({"reply_to": "?"}, "reply_to must be a post id"),
    ({"reply_to": "1870"}, "cannot reply to itself"),
    ({"lang": "English"}, "lang must be a language tag"),
    ({"likes": 3}, "unknown post field(s) likes"),
])
def test_each_bad_field_is_named(change, message):
    with pytest.raises(FeedError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        Post.from_dict({**GOOD, **change})
    named = next(iter(change))
    assert e.value.field == (None if named == "likes" else named)
    with pytest.raises(FeedError, match="JSON object"):
        Post.from_dict(["not", "a", "post"])
