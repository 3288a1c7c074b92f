"""Client tool calling on a model of ours: a tiny GPT with our tokenizer, trained in the test on the prompt our
template renders for a client's tools (a system message that lists them) to call one with our <|tool_call|>
token, served and called through the official openai client, streamed and not."""

from __future__ import annotations

import json

import pytest
import torch
from hermes_model import TOOLS, WEATHER_ARGS, WEATHER_Q
from tool_model import fit

from colossus.data import chat_template
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import save_model

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")


def train(tok, steps: int = 300) -> GPT:
    """The reply to WEATHER_Q with TOOLS offered: a get_weather call."""
    system = chat_template.tools_message(TOOLS)
    call = json.dumps({"name": "get_weather", "arguments": WEATHER_ARGS})
    ids, w = chat_template.render(tok, [{"role": "system", "content": system}, {"role": "user", "content": WEATHER_Q},
                                        {"role": "tool_call", "content": call}])
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=512, n_layer=2, d_model=64, n_head=4, n_kv_head=2))
    return fit(model, torch.tensor([ids[:-1]]), torch.tensor([ids[1:]]), (torch.tensor([w[1:]]) > 0).float(), steps)


@pytest.fixture(scope="module")
def client(tmp_path_factory, tok, live_server):
    d = tmp_path_factory.mktemp("ours-tools") / "ours"
    d.mkdir()
    tok.save(d / "tokenizer.json")
    save_model(d, train(tok))
    with live_server(model=d, max_batch=1) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_our_model_calls_a_clients_tool_streamed_and_not(client):
    args = dict(model="ours", messages=[{"role": "user", "content": WEATHER_Q}], tools=TOOLS, temperature=0,
                max_tokens=100)
    r = client.chat.completions.create(**args)
    [call] = r.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", WEATHER_ARGS)
    assert r.choices[0].message.content is None and r.choices[0].finish_reason == "tool_calls"
    chunks = list(client.chat.completions.create(stream=True, **args))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather" and deltas[0].function.arguments == ""
    assert all(d.id is None and d.function.name is None for d in deltas[1:])
    assert "".join(d.function.arguments for d in deltas) == call.function.arguments
    assert not any(c.choices[0].delta.content for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
