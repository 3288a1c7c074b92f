"""A search call's arguments as the loop takes them (colossus.assistant.loop.search_arguments): the query is
required, a filter written wrong is dropped with a note, and the request's search_parameters bound the rest."""

from __future__ import annotations

import datetime as dt

import pytest

from colossus.assistant.loop import search_arguments
from colossus.assistant.search import SearchParameters
from colossus.feed.post import FeedError

UTC = dt.timezone.utc


def test_a_call_written_right_is_taken_as_written():
    call = search_arguments({"query": "Pella Vorn", "from_date": "2026-11-01", "to_date": "2026-11-30",
                             "authors": ["@ostra_news", "quill"]}, SearchParameters())
    assert (call.query, call.authors, call.notes) == ("Pella Vorn", ["ostra_news", "quill"], [])
    assert call.since == dt.datetime(2026, 11, 1, tzinfo=UTC)
    assert call.until == dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)  # a day alone: the whole day


@pytest.mark.parametrize("args", [{}, {"query": ""}, {"query": "  "}, {"query": 7}, {"from_date": "2026-11-01"}])
def test_a_call_without_a_query_cannot_run(args):
    with pytest.raises(FeedError, match="search needs a query"):
        search_arguments(args, SearchParameters())


def test_what_the_model_wrote_wrong_is_dropped_with_a_note_each():
    call = search_arguments({"query": "Pella Vorn", "from_date": "2026-", "to_date": 20261130,
                             "authors": ["@", "@ostra_news"], "lang": "en"}, SearchParameters())
    assert (call.since, call.until, call.authors) == (None, None, ["ostra_news"])
    assert call.notes == [
        "lang is not an argument of search (query, from_date, to_date, authors): ignored",
        "from_date must be an ISO 8601 time such as 2026-11-30T09:00:00Z, not '2026-': searched without it",
        "to_date must be an ISO 8601 time such as 2026-11-30T09:00:00Z, not int: searched without it",
        "authors must be a handle of 1 to 15 letters, digits or underscores (as @pella), not '@': "
        "searched without it"]


def test_one_author_need_not_be_in_a_list_but_another_shape_is_dropped():
    assert search_arguments({"query": "q", "authors": "@quill"}, SearchParameters()).authors == ["quill"]
    call = search_arguments({"query": "q", "authors": {"handle": "quill"}}, SearchParameters())
    assert call.authors == [] and call.notes == ["authors must be a list of handles: searched without it"]


def test_the_request_bounds_every_call_and_a_dropped_filter_does_not_lift_them():
    request = SearchParameters(from_date=dt.datetime(2026, 11, 10, tzinfo=UTC),
                               to_date=dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC), included_handles=("quill",))
    wide = search_arguments({"query": "q", "from_date": "2026-11-01", "to_date": "2026-12-31"}, request)
    assert (wide.since, wide.until) == (request.from_date, request.to_date)  # the narrower of the two
    narrow = search_arguments({"query": "q", "from_date": "2026-11-15", "to_date": "2026-11-16"}, request)
    assert (narrow.since, narrow.until) == (dt.datetime(2026, 11, 15, tzinfo=UTC),
                                            dt.datetime(2026, 11, 16, 23, 59, 59, tzinfo=UTC))
    broken = search_arguments({"query": "q", "from_date": "soon", "authors": ["@"]}, request)
    assert (broken.since, broken.authors) == (request.from_date, ["quill"])
    with pytest.raises(FeedError, match="outside the request's included_x_handles"):
        search_arguments({"query": "q", "authors": ["@ostra_news"]}, request)
