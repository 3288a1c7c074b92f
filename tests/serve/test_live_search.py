"""Search in chat completions, as xAI's Live Search and OpenAI's url_citation annotations have it, through the
official `openai` client against a live server whose model was trained to use the tools (tests/tool_model.py)."""

from __future__ import annotations

import httpx
import pytest
import tool_model as tm

from colossus.serve.metrics import parse_metrics

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def url(live_server, tool_model_dir):
    with live_server(model=tool_model_dir) as u:
        yield u


@pytest.fixture(scope="module")
def client(url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def ingested(url):
    """The post, ingested over HTTP just before the first question: searchable as soon as POST returns."""
    r = httpx.post(f"{url}/v1/posts", json=tm.POST.to_dict())
    assert r.status_code == 200, r.text
    return f"{url}/posts/{tm.POST.id}"


def ask(client, question: str, **search) -> openai.types.chat.ChatCompletion:
    body = {"search_parameters": search} if search else {}
    return client.chat.completions.create(model="tools", messages=[{"role": "user", "content": question}],
                                          temperature=0, extra_body=body)


def check_cited(text: str, annotations, permalink: str) -> None:
    assert text == tm.RECENT_A
    (a,) = annotations
    assert a.type == "url_citation" and a.url_citation.url == permalink
    assert text[a.url_citation.start_index:a.url_citation.end_index] == "[1]"
    assert a.url_citation.title.startswith("@ostra_news: Pella Vorn joined Ostra Labs")


def test_mode_on_answers_from_a_post_ingested_a_moment_before_and_cites_it(client, ingested):
    r = ask(client, tm.RECENT_Q, mode="on")
    msg = r.choices[0].message
    check_cited(msg.content, msg.annotations, ingested)
    assert r.model_extra["citations"] == [ingested]
    assert r.usage.model_extra["num_sources_used"] == 1
    (step,) = msg.model_extra["tool_steps"]
    assert step["type"] == "search" and step["forced"] and step["arguments"] == {"query": tm.RECENT_Q}
    assert [(p["number"], p["id"], p["url"]) for p in step["results"]] == [(1, tm.POST.id, ingested)]


def test_mode_on_streamed_sends_the_citations_after_the_text_and_before_the_usage(client, ingested):
    stream = client.chat.completions.create(
        model="tools", messages=[{"role": "user", "content": tm.RECENT_Q}], temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"search_parameters": {"mode": "on"}})
    chunks = list(stream)
    kinds = []
    for c in chunks:
        if not c.choices:
            kinds.append("usage")
            continue
        d = c.choices[0].delta
        extra = d.model_extra or {}
        if "tool_steps" in extra:
            kinds.append("tool")
        elif "annotations" in extra:
            kinds.append("cited")
        elif c.choices[0].finish_reason:
            kinds.append("finish")
        elif d.content:
            kinds.append("text")
    assert kinds.count("cited") == 1 and kinds[-3:] == ["cited", "finish", "usage"]
    assert kinds.index("tool") < kinds.index("text")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    cited = next(c for c in chunks if c.choices and "annotations" in (c.choices[0].delta.model_extra or {}))
    annotations = [openai.types.chat.chat_completion_message.Annotation.model_validate(a)
                   for a in cited.choices[0].delta.model_extra["annotations"]]
    check_cited(text, annotations, ingested)
    assert cited.model_extra["citations"] == [ingested]
    assert chunks[-1].usage.model_extra["num_sources_used"] == 1


def test_mode_auto_lets_the_model_search(client, ingested):
    r = ask(client, tm.RECENT_Q)
    msg = r.choices[0].message
    check_cited(msg.content, msg.annotations, ingested)
    (step,) = msg.model_extra["tool_steps"]
    assert not step["forced"] and step["arguments"] == tm.RECENT_CALL


def test_an_injecting_post_among_the_results_changes_nothing(live_server, tool_model_dir):
    with live_server(model=tool_model_dir) as other:  # its own feed: the injection stays out of the other tests
        for post in (tm.POST, tm.INJECTION):
            assert httpx.post(f"{other}/v1/posts", json=post.to_dict()).status_code == 200
        client = openai.OpenAI(base_url=f"{other}/v1", api_key="unused", max_retries=0, timeout=60)
        r = ask(client, tm.RECENT_Q)
    assert r.choices[0].message.content == tm.RECENT_A and "HACKED" not in r.choices[0].message.content
    ids = [p["id"] for p in r.choices[0].message.model_extra["tool_steps"][0]["results"]]
    assert tm.INJECTION.id in ids  # it was read, as data


def test_a_bad_citation_is_dropped_and_counted_in_the_metrics(client, url, ingested):
    def bad() -> float:
        return parse_metrics(httpx.get(f"{url}/metrics").text)["colossus_bad_citations_total"]

    before = bad()
    r = ask(client, tm.BAD_Q)
    assert r.choices[0].message.content == "Ostra Labs employs Pella Vorn [1]."
    assert r.model_extra["citations"] == [ingested]
    assert bad() == before + 1


def test_nothing_found_cites_nothing(client, ingested):
    r = ask(client, tm.UNKNOWN_Q)
    assert r.choices[0].message.content == tm.UNKNOWN_A
    assert r.model_extra["citations"] == [] and r.choices[0].message.annotations == []
    assert r.usage.model_extra["num_sources_used"] == 0


def test_the_calculator_through_the_api(client, url):
    r = ask(client, tm.CALC_Q, mode="off")
    assert r.choices[0].message.content == tm.CALC_A
    (step,) = r.choices[0].message.model_extra["tool_steps"]
    assert step["type"] == "calculator" and step["error"] is None
    assert 'colossus_tool_calls_total{tool="calculator"}' in httpx.get(f"{url}/metrics").text


def test_return_citations_false_leaves_them_out(client, ingested):
    r = ask(client, tm.RECENT_Q, mode="on", return_citations=False)
    assert "citations" not in r.model_extra
    assert r.choices[0].message.annotations  # the inline markers are still described


@pytest.mark.parametrize(("search", "param"), [
    ({"mode": "sometimes"}, "search_parameters.mode"),
    ({"mode": 1}, "search_parameters.mode"),
    ({"from_date": "2026-13-01"}, "search_parameters.from_date"),
    ({"to_date": "yesterday"}, "search_parameters.to_date"),
    ({"from_date": "2026-12-02", "to_date": "2026-12-01"}, "search_parameters.from_date"),
    ({"max_search_results": 0}, "search_parameters.max_search_results"),
    ({"max_search_results": 51}, "search_parameters.max_search_results"),
    ({"return_citations": "yes"}, "search_parameters.return_citations"),
    ({"sources": [{"type": "web"}]}, "search_parameters.sources.0.type"),
    ({"sources": [{"type": "x", "included_x_handles": ["a"], "excluded_x_handles": ["b"]}]},
     "search_parameters.sources.0.included_x_handles"),
    ({"sources": [{"type": "x", "included_x_handles": ["not a handle!"]}]},
     "search_parameters.sources.0.included_x_handles"),
    ({"sources": [{"type": "x", "post_view_count": 10}]}, "search_parameters.sources.0.post_view_count"),
    ({"recency": "week"}, "search_parameters.recency"),
])
def test_bad_search_parameters_answer_400_naming_the_field(client, search, param):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, tm.RECENT_Q, **search)
    assert e.value.body["param"] == param, e.value.body


def test_sources_bound_the_search(client, ingested):
    r = ask(client, tm.RECENT_Q, sources=[{"type": "x", "excluded_x_handles": ["@ostra_news"]}])
    step = r.choices[0].message.model_extra["tool_steps"][0]
    assert all(p["author"] != "ostra_news" for p in step["results"])
    r = ask(client, tm.RECENT_Q, from_date="2026-12-01")
    assert r.choices[0].message.model_extra["tool_steps"][0]["results"] == []
