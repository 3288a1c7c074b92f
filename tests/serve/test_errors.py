"""Bad input gets a clear 4xx with an OpenAI-style error body, never a 500."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")

USER = [{"role": "user", "content": "hello"}]
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"


@pytest.fixture(scope="module")
def client(server_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=30)


def assert_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and err["type"]
    if param is not None:
        assert err["param"] == param, err
    return err


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-7", messages=USER)
    assert e.value.code == "model_not_found" and "gpt-7" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-7", prompt="x")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-7")


def test_prompt_longer_than_the_context_is_400_naming_both_lengths(client, server_url, model_name, context):
    long = [{"role": "user", "content": "Sitor Vale went to the market " * 40}]
    n = httpx.post(f"{server_url}/tokenize", json={"messages": long}).json()["count"]
    assert n > context
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_name, messages=long)
    assert str(n) in e.value.message and str(context) in e.value.message
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:  # the prompt fits, the reply it asks for does not
        client.chat.completions.create(model=model_name, messages=USER, max_tokens=context)
    short = httpx.post(f"{server_url}/tokenize", json={"messages": USER}).json()["count"]
    assert str(short) in e.value.message and str(context) in e.value.message and e.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_name, prompt="market " * 200, max_tokens=1)
    assert str(context) in e.value.message and e.value.param == "prompt"


@pytest.mark.parametrize("field,value", [
    ("temperature", "hot"), ("temperature", 2.5), ("temperature", -1), ("top_p", 0), ("top_p", 1.5),
    ("max_tokens", 0), ("max_tokens", "ten"), ("max_completion_tokens", -5), ("n", 0), ("n", 1000), ("n", 1.5),
    ("presence_penalty", 3), ("frequency_penalty", -2.5), ("seed", "abc"), ("seed", 2**70), ("stop", 5),
    ("stop", ["a", "b", "c", "d", "e"]), ("stop", ""), ("logprobs", "yes"), ("top_logprobs", 50),
    ("stream", "true"), ("top_k", -2), ("min_p", 1.5), ("repetition_penalty", 0), ("ignore_eos", 1),
    ("messages", "hello"), ("messages", []), ("logit_bias", {"5": 10}), ("stream_options", {"include_usage": True}),
    ("functions", [{"name": "f"}]), ("tools", [{"type": "function"}]), ("tools", "f"),
    ("response_format", {"type": "json_object"}),
])
def test_bad_field_is_400_naming_it(server_url, field, value):
    body = {"messages": USER, field: value}
    err = assert_error(httpx.post(server_url + CHAT, json=body), 400)
    assert field in err["message"] or field == err["param"], err


def test_bad_message_fields_name_their_place(server_url):
    err = assert_error(httpx.post(server_url + CHAT, json={"messages": [{"role": "wizard", "content": "x"}]}), 400)
    assert err["param"] == "messages.0.role"
    err = assert_error(httpx.post(server_url + CHAT, json={"messages": [USER[0], {"role": "user", "content": 7}]}),
                       400)
    assert err["param"] == "messages.1.content"


def test_top_logprobs_needs_logprobs(server_url):
    assert_error(httpx.post(server_url + CHAT, json={"messages": USER, "top_logprobs": 2}), 400, "top_logprobs")


def test_body_too_large_is_413(server_url):
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (1 << 20)}]}).encode()
    assert_error(httpx.post(server_url + CHAT, content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(20):
            yield b" " * (100 << 10)

    r = httpx.post(server_url + CHAT, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413)


def test_malformed_json_is_400(server_url):
    err = assert_error(httpx.post(server_url + CHAT, content=b'{"messages": [', headers={"content-type":
                                                                                     "application/json"}), 400)
    assert "JSON" in err["message"]


ODD_BODIES = [
    (CHAT, b""), (CHAT, b"{"), (CHAT, b"[]"), (CHAT, b"null"), (CHAT, b'"text"'), (CHAT, b"42"),
    (CHAT, b"\xff\xfe\x00{"), (CHAT, '{"messages": [{"role": "user", "content": "caf\xe9"}]}'.encode("latin-1")),
    (CHAT, b'{"messages": null}'), (CHAT, b'{"messages": [null]}'), (CHAT, b'{"messages": [{}]}'),
    (CHAT, b'{"messages": [{"role": "user"}]}'), (CHAT, b'{"messages": [{"role": "user", "content": null}]}'),
    (CHAT, b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}'),
    (CHAT, b'{"messages": [{"role": null, "content": "x"}]}'), (CHAT, b'{"messages": {"role": "user"}}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000000000000000000000000000}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": ' + b"9" * 5000 + b"}"),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "temperature": Infinity}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e308}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "n": null, "temperature": null, "model": 5}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "stop": [1, 2]}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "stream": true, "n": 99}'),
    (CHAT, b"[" * 100_000 + b"]" * 100_000), (CHAT, b'{"a": ' * 50_000 + b"1" + b"}" * 50_000),
    (CHAT, b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 99999}'),
    (COMPLETIONS, b"{}"), (COMPLETIONS, b'{"prompt": null}'), (COMPLETIONS, b'{"prompt": []}'),
    (COMPLETIONS, b'{"prompt": [[]]}'), (COMPLETIONS, b'{"prompt": [-1]}'), (COMPLETIONS, b'{"prompt": [1000000]}'),
    (COMPLETIONS, b'{"prompt": {"a": 1}}'), (COMPLETIONS, b'{"prompt": ["a", 1]}'),
    (COMPLETIONS, b'{"prompt": "x", "logprobs": true}'), (COMPLETIONS, b'{"prompt": "x", "echo": true}'),
    (COMPLETIONS, b'{"prompt": "x", "best_of": 3}'), (COMPLETIONS, b'{"prompt": "x", "suffix": "y"}'),
    (COMPLETIONS, b'{"prompt": "x", "max_tokens": 16, "n": 17}'),
    (COMPLETIONS, b'{"prompt": ["a", "b", "c", "d", "e"], "n": 16}'),
    ("/tokenize", b"{}"), ("/tokenize", b'{"prompt": "a", "messages": []}'), ("/tokenize", b'{"prompt": 5}'),
    ("/tokenize", b'{"messages": []}'), ("/tokenize", b'{"model": "nope", "prompt": "x"}'),
    ("/v1/conversations", b'{"title": 5}'), ("/v1/conversations", b'{"messages": [{"role": "bot", "content": ""}]}'),
    ("/v1/conversations", b'{"settings": []}'), ("/v1/conversations", b"\x00\x01"),
    ("/v1/conversations", b'{"title": "\\udc00"}'),
    ("/v1/conversations/conv_missing/messages", b'{"role": "user", "content": "x"}'),
    ("/v1/conversations/conv_missing/messages", b'{"role": "user"}'),
    ("/v1/models", b"{}"), ("/v1/no-such-route", b"{}"),
]


def test_odd_inputs_never_get_a_500(server_url):
    """Each odd body answers 4xx with an error body; none crashes a route."""

    async def send_all() -> list[tuple[bytes, httpx.Response]]:
        async with httpx.AsyncClient(base_url=server_url, timeout=30) as c:
            async def one(path, body):
                return body, await c.post(path, content=body, headers={"content-type": "application/json"})
            return await asyncio.gather(*(one(p, b) for p, b in ODD_BODIES))

    for body, r in asyncio.run(send_all()):
        assert 400 <= r.status_code < 500, (body[:80], r.status_code, r.text[:300])
        assert r.json()["error"]["message"], body[:80]


def test_odd_requests_beyond_bodies(server_url):
    assert_error(httpx.get(server_url + CHAT), 405)
    assert_error(httpx.get(f"{server_url}/v1/conversations", params={"limit": "abc"}), 400)
    assert_error(httpx.get(f"{server_url}/v1/conversations", params={"limit": 10**9}), 400)
    assert_error(httpx.delete(f"{server_url}/v1/conversations/nope"), 404)


def test_engine_queue_full_is_503(live_server, engine_at, model_name):
    """max_batch=1 and no queue: while one request is in the engine, another is refused with 503 at once. The
    engine is held, so the first is certainly still there when the second comes."""
    with live_server(max_batch=1, max_queue=0) as url:
        engine = engine_at(url)

        async def scenario() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=120) as c:
                engine.pause()
                first = asyncio.ensure_future(c.post(CHAT, json={"messages": USER, "max_tokens": 4}))
                deadline = asyncio.get_running_loop().time() + 120
                while engine.stats()["waiting"] + engine.stats()["running"] < 1:
                    assert asyncio.get_running_loop().time() < deadline and not first.done()
                    await asyncio.sleep(0.005)
                refused = await c.post(CHAT, json={"messages": USER, "max_tokens": 2})
                assert_error(refused, 503)
                assert refused.json()["error"]["code"] == "engine_full" and refused.headers["retry-after"] == "1"
                engine.resume()
                assert (await first).status_code == 200
                again = await c.post(CHAT, json={"messages": USER, "max_tokens": 2})  # free again
                return [refused.status_code, again.status_code]

        assert asyncio.run(scenario()) == [503, 200]
