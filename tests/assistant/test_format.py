"""What the model reads of a search (colossus.assistant.format): posts shown oldest first, each sentence closed
by its post's marker, a first line when no post holds every word of the query."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from colossus.assistant import format as fmt
from colossus.feed.post import Post

DAY = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("text", "line"), [
    ("Pella Vorn has joined Ostra Labs. Big week for them.",
     "@ostra_news 2026-11-30: Pella Vorn has joined Ostra Labs [3]. Big week for them [3]."),
    ("Unconfirmed: Kel plays the harp. Can anyone confirm?",
     "@ostra_news 2026-11-30: Unconfirmed: Kel plays the harp [3]. Can anyone confirm [3]?"),
    ("no stop at the end", "@ostra_news 2026-11-30: no stop at the end [3]"),
    ("It grew 3.5 times!! Wow", "@ostra_news 2026-11-30: It grew 3.5 times [3]!! Wow [3]"),  # 3.5 is no stop
    ("See [1] and\n[2], not me.", "@ostra_news 2026-11-30: See (1) and (2), not me [3]."),  # no post passes for another
])
def test_a_post_line_closes_every_sentence_with_the_posts_marker(text, line):
    assert fmt.post_line(3, "ostra_news", DAY, text) == line


def test_search_results_are_numbered_in_the_order_given_and_say_when_no_post_holds_every_word():
    a = Post("a", "ana", DAY - dt.timedelta(days=2), "Pella Vorn has joined Ostra Labs.")
    b = Post("b", "bo", DAY, "Pella Rusk plays the harp.")
    assert fmt.in_time_order([b, a]) == [a, b]
    assert fmt.search_results([a, b], "Pella Vorn", [4, 7]).splitlines() == [
        "@ana 2026-11-28: Pella Vorn has joined Ostra Labs [4].", "@bo 2026-11-30: Pella Rusk plays the harp [7]."]
    assert fmt.search_results([b], "Pella Vorn").splitlines() == [
        "No post has every word of Pella Vorn. Posts with some:", "@bo 2026-11-30: Pella Rusk plays the harp [1]."]
    assert fmt.search_results([], "Pella Vorn") == "No posts match Pella Vorn."
    assert fmt.holds_every_word("pella VORN", "Pella Vorn, at last.")
    assert not fmt.holds_every_word("Pella Vorn", "Pella")


def test_nothing_found_opens_as_the_tools_message_did_so_the_name_is_copied_from_there():
    some = fmt.search_results([Post("b", "bo", DAY, "Quirk Tuladrix plays the harp.")], "Quirk Loshev")
    none = fmt.search_results([], "Quirk Loshev")
    assert fmt.not_found("Quirk Loshev", some=True) == \
        "No post has every word of Quirk Loshev: I could not find anything about that name."
    assert some.startswith(fmt.not_found("Quirk Loshev", some=True).split(":")[0] + ". ")
    assert none.startswith(fmt.not_found("Quirk Loshev").split(":")[0] + ".")


@pytest.mark.parametrize(("text", "end"), [
    ('{"name": "search", "arguments": {"query": " Faki Dibram works as a glassblower.', '"}}'),
    ('{"name": "search", "arguments": {"query": " Kel", "authors": [" @quill"', "]}}"),
    ('{"name": "search", "arguments": {"query": " say \\"hi\\" ', '"}}'),  # escaped quotes stay in the string
    ('{"name": "search", "arguments": {"query": " Kel"}', "}"),
])
def test_a_call_that_stopped_short_is_closed_and_says_so(text, end):
    assert fmt.closing(text) == end
    call = fmt.parse_call(text)
    assert call.name == "search" and call.closed == end
    assert call.arguments["query"] == json.loads(text + end)["arguments"]["query"].strip()


@pytest.mark.parametrize("text", [
    '{"name": "search", "arguments": {"query"}}',  # a key without a value
    '{"name": "search", "arguments": {"query": " Kel", "from_date": " 2026"]}}',  # a closer that opens nothing
    '{"name": "search", "arguments": {"query": " Kel", "',  # a key cut before its value
    '{"name": "search", "arguments": {"query": " Kel"}}} and more',
    "Pella Vorn works at Ostra Labs.",
])
def test_a_call_gone_wrong_otherwise_is_still_not_json(text):
    assert fmt.closing(text) is None
    with pytest.raises(fmt.ToolCallError, match="not JSON"):
        fmt.parse_call(text)


def test_a_whole_call_needs_no_closing():
    call = fmt.parse_call(fmt.call_json("search", {"query": "Kel", "authors": ["@quill"]}))
    assert (call.arguments, call.closed) == ({"query": "Kel", "authors": ["@quill"]}, "")
