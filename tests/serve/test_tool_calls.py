"""Client tool calling through the official openai client, on a tiny Hugging Face model with a Hermes template,
trained in the test to call the tools (tests/hermes_model.py): calls streamed and not, the next turn with the
tool's result, tool_choice none / required / named, parallel_tool_calls false, arguments that are not JSON,
and the 400s."""

from __future__ import annotations

import json

import httpx
import pytest
from hermes_model import (
    BOTH_ARGS,
    BOTH_Q,
    BROKEN_ARGS,
    BROKEN_Q,
    FORCED_ARGS,
    HELLO_A,
    HELLO_Q,
    PLAIN_A,
    TOOLS,
    WEATHER_A,
    WEATHER_ARGS,
    WEATHER_Q,
    WEATHER_RESULT,
    write_hermes_model,
)

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")
pytest.importorskip("transformers", reason="the tiny model is built with transformers")
GREEDY = {"temperature": 0, "max_tokens": 64}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_hermes_model(tmp_path_factory.mktemp("hermes-model") / "hermes")


@pytest.fixture(scope="module")
def served(folder, live_server):
    with live_server(model=folder, max_batch=2) as url:
        yield url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def ask(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


def calls_of(r) -> list[tuple[str, str]]:
    return [(c.function.name, c.function.arguments) for c in r.choices[0].message.tool_calls or []]


def test_a_call_comes_back_as_tool_calls(client):
    r = client.chat.completions.create(model="hermes", messages=ask(WEATHER_Q), tools=TOOLS, **GREEDY)
    [choice] = r.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", WEATHER_ARGS)


def test_streamed_deltas_put_together_are_the_calls(client):
    args = dict(model="hermes", messages=ask(BOTH_Q), tools=TOOLS, **GREEDY)
    full = client.chat.completions.create(**args)
    assert [(n, json.loads(a)) for n, a in calls_of(full)] == [("get_weather", BOTH_ARGS), ("get_time", BOTH_ARGS)]
    chunks = list(client.chat.completions.create(stream=True, **args))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert not any(c.choices[0].delta.content for c in chunks)  # no <tool_call> marker leaks as text
    for index, (name, arguments) in enumerate(calls_of(full)):
        first, *rest = [d for d in deltas if d.index == index]
        assert first.id.startswith("call_") and first.type == "function" and first.function.name == name
        assert first.function.arguments == ""
        assert rest and all(d.id is None and d.type is None and d.function.name is None for d in rest)
        assert "".join(d.function.arguments for d in rest) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_the_next_turn_reads_the_tools_result(client):
    first = client.chat.completions.create(model="hermes", messages=ask(WEATHER_Q), tools=TOOLS, **GREEDY)
    call = first.choices[0].message.tool_calls[0]
    messages = ask(WEATHER_Q) + [first.choices[0].message.model_dump(exclude_none=True),
                                 {"role": "tool", "tool_call_id": call.id, "content": WEATHER_RESULT}]
    r = client.chat.completions.create(model="hermes", messages=messages, tools=TOOLS, **GREEDY)
    assert r.choices[0].message.content == WEATHER_A and r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.tool_calls is None


def test_tool_choice_none_offers_no_tools_and_auto_may_answer_in_text(client):
    r = client.chat.completions.create(model="hermes", messages=ask(WEATHER_Q), tools=TOOLS, tool_choice="none",
                                       **GREEDY)
    assert r.choices[0].message.content == PLAIN_A and r.choices[0].finish_reason == "stop"  # as without tools
    r = client.chat.completions.create(model="hermes", messages=ask(HELLO_Q), tools=TOOLS, **GREEDY)
    assert r.choices[0].message.content == HELLO_A and r.choices[0].message.tool_calls is None


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_required_and_named_force_a_call(client, choice):
    """Unforced, this model says hello to HELLO_Q (test above); the forced opening makes it call get_time."""
    for stream in (False, True):
        r = client.chat.completions.create(model="hermes", messages=ask(HELLO_Q), tools=TOOLS, tool_choice=choice,
                                           stream=stream, **GREEDY)
        if stream:
            chunks = list(r)
            deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
            assert deltas[0].function.name == "get_time" and chunks[-1].choices[0].finish_reason == "tool_calls"
            assert json.loads("".join(d.function.arguments for d in deltas)) == FORCED_ARGS
        else:
            assert [(n, json.loads(a)) for n, a in calls_of(r)] == [("get_time", FORCED_ARGS)]
            assert r.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_returns_one_call(client):
    for stream in (False, True):
        r = client.chat.completions.create(model="hermes", messages=ask(BOTH_Q), tools=TOOLS,
                                           parallel_tool_calls=False, stream=stream, **GREEDY)
        if stream:
            chunks = list(r)
            deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
            assert {d.index for d in deltas} == {0} and deltas[0].function.name == "get_weather"
            assert chunks[-1].choices[0].finish_reason == "tool_calls"
        else:
            assert [n for n, _ in calls_of(r)] == ["get_weather"] and r.choices[0].finish_reason == "tool_calls"


def test_arguments_that_are_not_json_come_back_as_written(client):
    r = client.chat.completions.create(model="hermes", messages=ask(BROKEN_Q), tools=TOOLS, **GREEDY)
    assert calls_of(r) == [("get_weather", BROKEN_ARGS)] and r.choices[0].finish_reason == "tool_calls"
    chunks = client.chat.completions.create(model="hermes", messages=ask(BROKEN_Q), tools=TOOLS, stream=True,
                                            **GREEDY)
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert "".join(d.function.arguments for d in deltas) == BROKEN_ARGS


@pytest.mark.parametrize("body, param", [
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools.0.type"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools.0.function.name"),
    ({"tools": TOOLS + TOOLS[:1]}, "tools.2.function.name"),
    ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
    ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, None),  # an empty list is no calls
    ({"tools": TOOLS, "search_parameters": {"mode": "on"}}, "search_parameters.mode"),
])
def test_bad_tool_requests_are_400_naming_the_field(served, body, param):
    url, _ = served
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": ask(HELLO_Q), "max_tokens": 4, **body})
    if param is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error", err


CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_model_whose_template_has_no_tool_format_refuses_forced_calls_and_writes_text(folder, live_server,
                                                                                           tmp_path):
    """The same weights with a ChatML template that knows no tools: no parser, so required or a named function is a
    400 saying so, and auto generates text that is never parsed."""
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    (plain / "tokenizer_config.json").write_text(json.dumps(config | {"chat_template": CHATML}))
    with live_server(model=plain, max_batch=1) as url:
        for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
            r = httpx.post(f"{url}/v1/chat/completions", json={"messages": ask(HELLO_Q), "tools": TOOLS,
                                                               "tool_choice": choice, "max_tokens": 4})
            assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice", r.text
            assert "no tool-call format" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/v1/chat/completions", json={"messages": ask(WEATHER_Q), "tools": TOOLS,
                                                           "max_tokens": 40, "temperature": 0})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] in ("stop", "length") and "tool_calls" not in choice["message"]
