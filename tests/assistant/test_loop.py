"""The assistant loop through the real engine, with a model trained to use the tools (tests/tool_model.py)
and a real feed."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import tool_model as tm

from colossus.assistant.loop import MAX_TOOL_CALLS, Assistant, ToolStep
from colossus.assistant.search import SearchParameters
from colossus.feed.feed import Feed
from colossus.infer.engine import Delta, Engine
from colossus.infer.sampling import SamplingParams
from colossus.model.io import load_model

GREEDY = SamplingParams(temperature=0, max_tokens=120)


@pytest.fixture(scope="module")
def engine(tool_model_dir, tok):
    e = Engine(load_model(tool_model_dir), tok, max_batch=4)
    e.start()
    yield e
    e.shutdown()


@pytest.fixture
def feed(tmp_path):
    f = Feed(tmp_path / "feed")
    f.ingest([tm.POST])
    yield f
    f.close()


def ask(engine, tok, feed, question: str, search: SearchParameters | None = None, params=GREEDY):
    assistant = Assistant(engine, tok, feed, permalink=lambda pid: f"http://h/posts/{pid}")
    answer = assistant.answer([{"role": "user", "content": question}], params, search)

    async def run() -> list:
        return [e async for e in answer.events()]

    events = asyncio.run(run())
    steps = [e for e in events if isinstance(e, ToolStep)]
    deltas = [e for e in events if isinstance(e, Delta)]
    return answer, steps, "".join(d.text for d in deltas), deltas[-1]


def test_the_model_searches_reads_the_post_and_cites_it(engine, tok, feed):
    answer, steps, text, last = ask(engine, tok, feed, tm.RECENT_Q)
    assert [(s.name, s.arguments, s.forced) for s in steps] == [("search", tm.RECENT_CALL, False)]
    assert [src.post.id for src in steps[0].sources] == [tm.POST.id]
    assert steps[0].output == tm.result_of([tm.POST], "Pella Vorn")
    assert text == tm.RECENT_A and last.finish_reason == "stop"
    assert answer.citations == [f"http://h/posts/{tm.POST.id}"]
    assert [(a["url_citation"]["start_index"], a["url_citation"]["end_index"]) for a in answer.annotations] == \
        [(text.index("[1]"), text.index("[1]") + 3)]
    assert answer.num_sources_used == 1 and answer.bad_citations == 0


def test_the_continuation_after_a_tool_reuses_the_prompt_already_computed(engine, tok, feed):
    answer, _, _, last = ask(engine, tok, feed, tm.RECENT_Q)
    # two engine requests: the call, then the answer, whose prompt begins with the first prompt and the call
    first_prompt = len(tok.encode(tm.RECENT_Q)) + 4  # <|bos|><|user|>...<|end|><|assistant|>
    assert answer.cached_tokens >= first_prompt
    assert last.prompt_tokens == answer.prompt_tokens > 2 * first_prompt


def test_a_citation_of_a_post_never_retrieved_is_dropped_and_counted(engine, tok, feed):
    answer, steps, text, _ = ask(engine, tok, feed, tm.BAD_Q)
    assert len(steps) == 1 and text == "Ostra Labs employs Pella Vorn [1]."
    assert answer.bad_citations == 1 and answer.citations == [f"http://h/posts/{tm.POST.id}"]


def test_nothing_found_is_said(engine, tok, feed):
    answer, steps, text, _ = ask(engine, tok, feed, tm.UNKNOWN_Q)
    assert steps[0].output == 'No posts match Zorblat Quen.' and steps[0].sources == []
    assert text == tm.UNKNOWN_A and answer.citations == [] and answer.num_sources_used == 0


def test_the_calculator_runs_without_eval(engine, tok, feed):
    _, steps, text, _ = ask(engine, tok, feed, tm.CALC_Q)
    assert [(s.name, s.output, s.error) for s in steps] == [("calculator", "84", None)]
    assert text == tm.CALC_A


def test_mode_on_searches_the_question_before_the_model_writes(engine, tok, feed):
    answer, steps, text, _ = ask(engine, tok, feed, tm.RECENT_Q, SearchParameters(mode="on"))
    assert steps[0].forced and steps[0].arguments == {"query": tm.RECENT_Q}
    assert [src.post.id for src in steps[0].sources] == [tm.POST.id]
    # the post holds some of the question's words, not all, and the tool message says so first
    assert steps[0].output.splitlines()[0] == f"No post has every word of {tm.RECENT_Q}. Posts with some:"
    assert text == tm.RECENT_A and answer.citations == [f"http://h/posts/{tm.POST.id}"]


def test_mode_off_refuses_the_search_the_model_asks_for(engine, tok, feed):
    answer, steps, _, last = ask(engine, tok, feed, tm.RECENT_Q, SearchParameters(mode="off"))
    assert steps[0].error == "search is off" and steps[0].sources == []
    assert answer.citations == [] and answer.num_sources_used == 0
    assert last.finish_reason in ("stop", "length")


def test_filters_of_the_request_bound_every_search(engine, tok, feed):
    _, steps, _, _ = ask(engine, tok, feed, tm.RECENT_Q, SearchParameters(excluded_handles=("ostra_news",)))
    assert steps[0].sources == []
    _, steps, _, _ = ask(engine, tok, feed, tm.RECENT_Q, SearchParameters(included_handles=("someone_else",)))
    assert steps[0].sources == []
    _, steps, text, _ = ask(engine, tok, feed, tm.RECENT_Q, SearchParameters(included_handles=("ostra_news",)))
    assert [s.post.id for s in steps[0].sources] == [tm.POST.id] and text == tm.RECENT_A


def test_filters_the_model_wrote_wrong_are_dropped_with_a_note_and_the_search_runs(engine, tok, feed):
    answer, steps, text, _ = ask(engine, tok, feed, tm.FILTERS_Q)
    assert [(s.name, s.arguments, s.error) for s in steps] == [("search", tm.FILTERS_CALL, None)]
    assert steps[0].notes == [
        "from_date must be an ISO 8601 time such as 2026-11-30T09:00:00Z, not '2026-': searched without it",
        "authors must be a handle of 1 to 15 letters, digits or underscores (as @pella), not '@': "
        "searched without it"]
    assert [src.post.id for src in steps[0].sources] == [tm.POST.id] and steps[0].to_dict()["notes"] == steps[0].notes
    assert text == tm.RECENT_A and answer.citations == [f"http://h/posts/{tm.POST.id}"]


def test_a_call_that_stopped_short_is_closed_and_runs(engine, tok, feed):
    answer, steps, text, _ = ask(engine, tok, feed, tm.SHORT_Q)
    assert [(s.name, s.arguments, s.error) for s in steps] == [("search", {"query": "Pella Vorn"}, None)]
    assert steps[0].notes == ['the call stopped short and was closed with "}}']
    assert [src.post.id for src in steps[0].sources] == [tm.POST.id]
    assert text == tm.RECENT_A and answer.citations == [f"http://h/posts/{tm.POST.id}"]


def test_the_requests_bounds_hold_when_the_models_filters_are_dropped(engine, tok, feed):
    feed.ingest([tm.Post("p1869", "ostra_news", tm.POST.created_at - dt.timedelta(days=40), "Pella Vorn moved.",
                         None, "en")])
    since = SearchParameters(from_date=tm.POST.created_at.replace(hour=0))
    _, steps, _, _ = ask(engine, tok, feed, tm.FILTERS_Q, since)
    assert [src.post.id for src in steps[0].sources] == [tm.POST.id]  # the request's own from_date still holds


def test_tool_calls_are_bounded(engine, tok, feed):
    _, steps, text, last = ask(engine, tok, feed, tm.LOOP_Q, params=SamplingParams(temperature=0, max_tokens=400))
    searches = [s for s in steps if s.error is None]
    assert len(searches) <= MAX_TOOL_CALLS and len(steps) <= MAX_TOOL_CALLS + 1
    assert len(searches) == MAX_TOOL_CALLS  # the model keeps calling, so the bound is what stops it
    assert steps[-1].error == "too many tool calls"
    assert last.finish_reason in ("stop", "length")


def test_results_are_cut_to_what_fits_in_the_context(engine, tok, tmp_path):
    feed = Feed(tmp_path / "big")
    long = [tm.Post(f"q{i}", "ostra_news", tm.POST.created_at, "Pella Vorn " + "word " * 35) for i in range(20)]
    feed.ingest(long)
    try:
        answer, steps, _, _ = ask(engine, tok, feed, tm.RECENT_Q, SearchParameters(max_search_results=20))
    finally:
        feed.close()
    kept = steps[0].sources
    assert 0 < len(kept) < 20 and answer.num_sources_used == len(kept)
    assert steps[0].output.count("\n") == len(kept) - 1


def test_a_search_shows_its_posts_oldest_first_and_numbers_them_so(engine, tok, tmp_path):
    feed = Feed(tmp_path / "two")
    older = tm.Post("p1000", "quiet_heron", tm.POST.created_at - dt.timedelta(days=20),
                    "Pella Vorn, yes Pella Vorn, has joined Kelm Farms.")  # ranked first: both words twice
    feed.ingest([tm.POST, older])
    try:
        assert [p.id for p, _ in feed.search("Pella Vorn")] == [older.id, tm.POST.id]
        _, steps, _, _ = ask(engine, tok, feed, tm.RECENT_Q)
    finally:
        feed.close()
    assert [(s.number, s.post.id) for s in steps[0].sources] == [(1, older.id), (2, tm.POST.id)]
    assert steps[0].output == tm.result_of([older, tm.POST], "Pella Vorn")
    assert [line.split(":")[0] for line in steps[0].output.splitlines()] == ["@quiet_heron 2026-11-10",
                                                                             "@ostra_news 2026-11-30"]
    assert steps[0].output.splitlines()[0].endswith("has joined Kelm Farms [1].")


def test_a_search_without_a_feed_reads_back_an_error(engine, tok):
    _, steps, _, _ = ask(engine, tok, None, tm.RECENT_Q)
    assert steps[0].error == "no feed" and steps[0].sources == []


def test_a_fact_check_of_a_post_gives_its_label_and_evidence(engine, tok, feed):
    from colossus.assistant.factcheck import fact_check

    assistant = Assistant(engine, tok, feed, permalink=lambda pid: f"http://h/posts/{pid}")
    v = asyncio.run(fact_check(assistant, GREEDY, post=tm.POST))
    assert (v.label, v.given, v.reply) == ("SUPPORTS", True, tm.CHECK_POST_A)
    assert v.explanation == "Pella Vorn works at Ostra Labs, as the post says [1]."
    assert [s.post.id for s in v.evidence] == [tm.POST.id]
    v = asyncio.run(fact_check(assistant, GREEDY, claim=tm.CHECK_CLAIM))
    assert v.label == "REFUTES" and [s.post.id for s in v.evidence] == [tm.POST.id]


def test_the_fact_check_tool_runs_the_same_check_and_its_evidence_can_be_cited(engine, tok, feed):
    answer, steps, text, _ = ask(engine, tok, feed, tm.TOOL_CHECK_Q)
    assert [(s.name, s.arguments) for s in steps] == [("fact_check", {"post_id": tm.POST.id})]
    assert steps[0].output == tm.TOOL_CHECK_RESULT and [s.post.id for s in steps[0].sources] == [tm.POST.id]
    assert text == tm.TOOL_CHECK_A and answer.citations == [f"http://h/posts/{tm.POST.id}"]
    assert answer.completion_tokens > len(tok.encode(tm.TOOL_CHECK_A))  # the check's tokens are counted too


@pytest.mark.parametrize(("label", "reply", "want"), [
    ("SUPPORTS", "SUPPORTS: It is so [1].", ("SUPPORTS", "It is so [1].")),
    ("REFUTES", "refutes: no.", ("REFUTES", "no.")),
    ("NOT ENOUGH INFO", "NOT ENOUGH INFO: I found nothing.", ("NOT ENOUGH INFO", "I found nothing.")),
    (None, "Pella Vorn works at Ostra Labs.", (None, "Pella Vorn works at Ostra Labs.")),
    (None, "SUPPORTS it", (None, "SUPPORTS it")),
    ("SUPPORTS", "Pella Vorn works at Ostra Labs, as the post says [1]. Verdict: SUPPORTS.",
     ("SUPPORTS", "Pella Vorn works at Ostra Labs, as the post says [1].")),
    ("REFUTES", "Pella Vorn works at Ostra Labs. The claim is false. verdict: refutes",
     ("REFUTES", "Pella Vorn works at Ostra Labs. The claim is false.")),
    ("NOT ENOUGH INFO", "I could not find anything. Verdict: NOT ENOUGH INFO.",
     ("NOT ENOUGH INFO", "I could not find anything.")),
    (None, "Verdict: SUPPORTS, said the post, but no.", (None, "Verdict: SUPPORTS, said the post, but no.")),
])
def test_verdicts_are_read_from_the_label_that_opens_or_closes_the_answer(label, reply, want):
    from colossus.assistant.format import verdict

    assert verdict(reply) == want
