"""`colossus serve` through the real command line: each flag is shown to have its effect, not only to be
accepted. Three server processes, each with a group of flags whose checks do not interfere:

    keyed   --host 127.0.0.2 --kernel torch --kv-dtype bfloat16 --threads 1 --max-body 1000
            --rate-limit 2/min, three --api-key and two more keys in $COLOSSUS_API_KEY
    c_step  --host 127.0.0.1 --kernel c --kernel-threads 1 --kv-dtype bfloat16 (the same model as keyed
            computed by the C step: the same greedy tokens)
    batch2  (no --host) --kernel torch --weights bfloat16 --kv-dtype float32 --max-batch 2 --threads 3

On keyed every rate-limited check uses a key of its own, so that the buckets (2 requests a minute) of one
check never refuse another's requests, whatever order the tests run in."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import torch
from cli_server import SECOND_LOOPBACK, CliServer, can_bind, free_port, run_cli

from colossus.infer.cpu_decode import load_kernel
from colossus.infer.detokenize import TokenTable
from colossus.model.io import load_model
from colossus.serve.metrics import parse_metrics

KEY_RATE, KEY_OTHER, KEY_GREEDY = "key-rate-a1", "key-other-b2", "key-greedy-g3"  # --api-key, three times
KEY_BODY, KEY_CHAT = "key-body-c4", "key-chat-d5"  # $COLOSSUS_API_KEY="C,D"
KEYS = (KEY_RATE, KEY_OTHER, KEY_GREEDY, KEY_BODY, KEY_CHAT)
WRONG = "key-wrong-z9"
HELLO = [{"role": "user", "content": "Where is Sitor Vale?"}]
GREEDY = {"temperature": 0, "ignore_eos": True}
TOKENS = 24
CONTEXT = 128
TOL = 1e-4  # logprobs of one model computed two ways (float rounding) agree far closer than this


needs_second_loopback = pytest.mark.skipif(not can_bind(SECOND_LOOPBACK), reason="127.0.0.2 is not a local address")
needs_c = pytest.mark.skipif(load_kernel() is None, reason="no C compiler: --kernel c cannot start")


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(lively, tmp_path_factory):
    if not can_bind(SECOND_LOOPBACK):
        pytest.skip("127.0.0.2 is not a local address")
    d = tmp_path_factory.mktemp("serve-keyed")
    args = ["--model", str(lively), "--db", str(d / "conv.db"), "--kernel", "torch", "--kv-dtype", "bfloat16",
            "--threads", "1", "--max-body", "1000", "--rate-limit", "2/min",
            "--api-key", KEY_RATE, "--api-key", KEY_OTHER, "--api-key", KEY_GREEDY]
    with CliServer(args, d / "serve.log", host=SECOND_LOOPBACK,
                   env={"COLOSSUS_API_KEY": f"{KEY_BODY},{KEY_CHAT}"}) as s:
        yield s


@pytest.fixture(scope="module")
def c_step(lively, tmp_path_factory):
    if load_kernel() is None:
        pytest.skip("no C compiler: --kernel c cannot start")
    d = tmp_path_factory.mktemp("serve-c")
    args = ["--model", str(lively), "--db", str(d / "conv.db"), "--kernel", "c", "--kernel-threads", "1",
            "--kv-dtype", "bfloat16"]
    with CliServer(args, d / "serve.log", host="127.0.0.1") as s:
        yield s


BATCH2 = ["--kernel", "torch", "--weights", "bfloat16", "--kv-dtype", "float32", "--max-batch", "2"]


@pytest.fixture(scope="module")
def batch2(lively, tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-batch2")
    with CliServer(["--model", str(lively), "--db", str(d / "conv.db"), *BATCH2, "--threads", "3"],
                   d / "serve.log", host=None) as s:
        yield s


# ---- the forward step and its precision ----


def prompts(tok) -> list[list[int]]:
    return [[tok.bos] + tok.encode(t) for t in ("Sitor Vale was born in", "The river towns of the north",
                                                  "Who is Kel?")]


def reference(model, prompt: list[int], n: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy by full recompute, no KV cache at all: the ids and each step's log-softmax over the vocabulary."""
    ids, lps = list(prompt), []
    with torch.inference_mode():
        for _ in range(n):
            lp = model(torch.tensor([ids]))[0, -1].log_softmax(-1)
            lps.append(lp)
            ids.append(int(lp.argmax()))
    return ids[len(prompt):], lps


def greedy_completions(url: str, ps: list[list[int]], headers: dict | None = None) -> list[dict]:
    r = httpx.post(f"{url}/v1/completions", headers=headers, timeout=120,
                   json={"prompt": ps, "max_tokens": TOKENS, "logprobs": 0, **GREEDY})
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert len(choices) == len(ps) and all(c["finish_reason"] == "length" for c in choices)
    return [c["logprobs"] for c in choices]


def max_gap(server: dict, ids: list[int], lps: list[torch.Tensor], shown) -> float:
    """The largest difference between the server's chosen-token logprobs and the reference's, where the server
    chose the reference's tokens (inf where it did not)."""
    assert len(server["tokens"]) == len(ids) == TOKENS
    if server["tokens"] != [shown[i][0] for i in ids]:
        return float("inf")
    return max(abs(s - float(lp[i])) for s, lp, i in zip(server["token_logprobs"], lps, ids, strict=True))


@needs_c
def test_precision_flags_change_what_the_server_computes(keyed, c_step, batch2, lively, tok):
    """The logs say which forward step, weights and KV cache each server runs, and the numbers agree:
    - batch2 (--weights bfloat16 --kv-dtype float32) computes the model with its matmul weights rounded to
      bfloat16, as a full recompute does within float rounding, and not the float32 model;
    - keyed and c_step (--kv-dtype bfloat16, float32 weights) are close to the float32 model but not within
      float rounding (their keys and values are rounded), and agree with each other within it."""
    assert "forward step: PyTorch ops, float32 matmul weights, bfloat16 KV cache" in keyed.line("forward step")
    assert "forward step: one C call on 1 thread(s), float32 matmul weights, bfloat16 KV cache" in \
        c_step.line("forward step")
    assert "forward step: PyTorch ops, bfloat16 matmul weights, float32 KV cache" in batch2.line("forward step")

    ps = prompts(tok)
    shown = TokenTable(tok, tok.vocab_size).shown
    model32 = load_model(lively)
    model16 = load_model(lively)
    model16.round_matmul_weights(torch.bfloat16)
    ref32 = [reference(model32, p, TOKENS) for p in ps]
    ref16 = [reference(model16, p, TOKENS) for p in ps]

    b2 = greedy_completions(batch2.url, ps)
    for got, (ids, lps) in zip(b2, ref16, strict=True):
        assert max_gap(got, ids, lps, shown) < TOL
    # the first token (the same context either way) has the rounded model's logprob, not the float32 one's
    assert max(abs(got["token_logprobs"][0] - float(lps[0].max())) for got, (_, lps) in zip(b2, ref32, strict=True)) \
        > 5 * TOL

    k = greedy_completions(keyed.url, ps, bearer(KEY_GREEDY))
    c = greedy_completions(c_step.url, ps)
    assert max(max_gap(got, ids, lps, shown) for got, (ids, lps) in zip(k, ref32, strict=True)) > TOL
    assert max(max_gap(got, ids, lps, shown) for got, (ids, lps) in zip(c, ref32, strict=True)) > TOL
    for a, b in zip(k, c, strict=True):  # the C step and PyTorch ops: same tokens, logprobs within rounding
        assert a["tokens"] == b["tokens"]
        assert max(abs(x - y) for x, y in zip(a["token_logprobs"], b["token_logprobs"], strict=True)) < TOL


@needs_c
def test_the_c_step_gives_the_same_greedy_reply_as_pytorch_ops(keyed, c_step):
    body = {"messages": HELLO, "max_tokens": 40, **GREEDY}
    torch_ops = httpx.post(f"{keyed.url}/v1/chat/completions", json=body, headers=bearer(KEY_GREEDY), timeout=120)
    c = httpx.post(f"{c_step.url}/v1/chat/completions", json=body, timeout=120)
    assert torch_ops.status_code == c.status_code == 200, (torch_ops.text, c.text)
    a, b = torch_ops.json(), c.json()
    assert a["usage"]["completion_tokens"] == b["usage"]["completion_tokens"] == 40
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]


@pytest.mark.parametrize("flag", ["--kernel-threads", "--threads"])
def test_zero_threads_is_one_clear_line(lively, tmp_path, flag):
    r = run_cli("serve", "--model", str(lively), "--db", str(tmp_path / "c.db"), flag, "0", "--port",
                str(free_port()))
    assert r.returncode == 2
    assert r.stderr == f"colossus: error: {flag} must be >= 1, not 0\n"
    assert "Serving" not in r.stdout


def test_threads_sets_torchs_thread_pool(batch2, keyed):
    """--threads N is torch.set_num_threads(N) in the server, as its start-up line says."""
    assert "; 3 torch thread(s))" in batch2.line("Serving")
    assert "; 1 torch thread(s))" in keyed.line("Serving")


# ---- --max-batch ----


def engine_metrics(url: str) -> dict[str, float]:
    return parse_metrics(httpx.get(f"{url}/metrics", timeout=30).text)


def test_max_batch_sizes_the_kv_cache_and_caps_running_requests(batch2, lively):
    """The log and /metrics show 2 slots of the 128-token context; with 6 requests in flight /metrics never
    shows more than 2 running, and (waited for, never timed) it does show 2 running while others wait."""
    assert "KV cache: 2 slots x 128 tokens" in batch2.line("KV cache:")
    m = engine_metrics(batch2.url)
    assert m["colossus_kv_cache_total_tokens"] == 2 * CONTEXT and m["colossus_requests_running"] == 0

    body = {"messages": HELLO, "max_tokens": 100, **GREEDY}
    seen: list[tuple[float, float]] = []
    deadline = time.monotonic() + 180
    while not any(run == 2 and wait >= 1 for run, wait in seen):
        assert time.monotonic() < deadline, f"never saw 2 running with others waiting: {sorted(set(seen))}"
        results: list[httpx.Response] = []

        def one(out: list[httpx.Response]) -> None:
            out.append(httpx.post(f"{batch2.url}/v1/chat/completions", json=body, timeout=180))

        threads = [threading.Thread(target=one, args=(results,)) for _ in range(6)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            m = engine_metrics(batch2.url)
            seen.append((m["colossus_requests_running"], m["colossus_requests_waiting"]))
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
        assert all(r.json()["usage"]["completion_tokens"] == 100 for r in results)
    assert max(run for run, _ in seen) == 2, sorted(set(seen))
    m = engine_metrics(batch2.url)
    assert m["colossus_kv_cache_used_tokens"] == 0 and m["colossus_requests_finished_total"] >= 6
    # --kernel torch: every step on PyTorch ops, none on the C step
    assert m["colossus_engine_torch_steps_total"] == m["colossus_engine_steps_total"] > 0
    assert m["colossus_engine_c_steps_total"] == 0


@needs_c
def test_the_default_batch_is_32_slots_and_kernel_c_takes_every_step(c_step):
    assert "KV cache: 32 slots x 128 tokens" in c_step.line("KV cache:")
    assert engine_metrics(c_step.url)["colossus_kv_cache_total_tokens"] == 32 * CONTEXT
    r = httpx.post(f"{c_step.url}/v1/chat/completions", json={"messages": HELLO, "max_tokens": 5, **GREEDY},
                   timeout=60)
    assert r.status_code == 200, r.text
    m = engine_metrics(c_step.url)
    assert m["colossus_engine_c_steps_total"] == m["colossus_engine_steps_total"] >= 5
    assert m["colossus_engine_torch_steps_total"] == 0
    assert "C step built for " in c_step.line("C step built for")
    assert "forward path by step size" not in c_step.log()  # forced: nothing timed, nothing chosen


# ---- --host ----


def answers_only_on(port: int, host: str, other: str) -> None:
    assert httpx.get(f"http://{host}:{port}/health", timeout=30).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{other}:{port}/health", timeout=30)


@needs_second_loopback
def test_host_is_where_the_server_listens_and_nowhere_else(keyed, lively):
    assert f"Serving {lively} on http://{SECOND_LOOPBACK}:{keyed.port} (5 API key(s);" in keyed.line("Serving")
    answers_only_on(keyed.port, SECOND_LOOPBACK, "127.0.0.1")


@needs_c
@needs_second_loopback
def test_host_127_0_0_1_is_not_another_loopback_address(c_step, lively):
    assert f"Serving {lively} on http://127.0.0.1:{c_step.port} (0 API key(s): open" in c_step.line("Serving")
    answers_only_on(c_step.port, "127.0.0.1", SECOND_LOOPBACK)


def test_the_default_host_is_127_0_0_1(batch2, lively):
    assert f"Serving {lively} on http://127.0.0.1:{batch2.port} (" in batch2.line("Serving")
    assert httpx.get(f"http://127.0.0.1:{batch2.port}/health", timeout=30).status_code == 200


# ---- keys ----


def test_every_key_from_the_flags_and_the_environment_is_accepted(keyed, lively):
    for key in KEYS:
        r = httpx.get(f"{keyed.url}/v1/models", headers=bearer(key), timeout=30)
        assert r.status_code == 200 and r.json()["data"][0]["id"] == lively.name, key
    for headers in ({}, bearer(WRONG), bearer(f"{KEY_BODY},{KEY_CHAT}"), {"Authorization": KEY_RATE}):
        r = httpx.get(f"{keyed.url}/v1/models", headers=headers, timeout=30)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "invalid_api_key" and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{keyed.url}/health", timeout=30).status_code == 200
    assert httpx.get(f"{keyed.url}/metrics", timeout=30).status_code == 200
    assert "(5 API key(s);" in keyed.line("Serving")


# ---- --rate-limit ----


def test_rate_limit_is_a_bucket_per_key(keyed, lively):
    body = {"model": lively.name, "prompt": "The", "max_tokens": 1}
    statuses, t0 = [], time.monotonic()
    while len(statuses) < 6 and 429 not in statuses:
        r = httpx.post(f"{keyed.url}/v1/completions", json=body, headers=bearer(KEY_RATE), timeout=60)
        statuses.append(r.status_code)
    assert statuses[:2] == [200, 200]  # the bucket starts full: a burst of 2
    assert statuses[-1] == 429
    if time.monotonic() - t0 < 30:  # one token comes back every 30 s: within that, the third is refused
        assert statuses == [200, 200, 429]
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 30
    assert r.json() == {"error": {"message": r.json()["error"]["message"], "type": "rate_limit_error",
                                  "param": None, "code": "rate_limit_exceeded"}}
    assert "2 requests a minute" in r.json()["error"]["message"]
    # another key has its own bucket; routes that do not generate are not limited
    assert httpx.post(f"{keyed.url}/v1/completions", json=body, headers=bearer(KEY_OTHER),
                      timeout=60).status_code == 200
    assert httpx.get(f"{keyed.url}/v1/models", headers=bearer(KEY_RATE), timeout=30).status_code == 200
    m = engine_metrics(keyed.url)
    assert m['colossus_http_requests_total{endpoint="/v1/completions",status="429"}'] >= 1


# ---- --max-body ----


def chat_body(size: int) -> bytes:
    """A short chat request padded with JSON whitespace to exactly size bytes (a prompt that fits the context)."""
    body = b'{"messages": [{"role": "user", "content": "Where is Vale?"}], "max_tokens": 2}'
    return body + b" " * (size - len(body))


def test_max_body_refuses_larger_bodies_with_413(keyed, c_step):
    h = bearer(KEY_BODY) | {"content-type": "application/json"}
    big = httpx.post(f"{keyed.url}/v1/chat/completions", content=chat_body(1500), headers=h, timeout=60)
    assert big.status_code == 413
    assert big.json() == {"error": {"message": "the request body of 1500 bytes exceeds the limit of 1000 bytes",
                                    "type": "invalid_request_error", "param": None, "code": "request_too_large"}}
    ok = httpx.post(f"{keyed.url}/v1/chat/completions", content=chat_body(1000), headers=h, timeout=60)
    assert ok.status_code == 200, ok.text
    # the conversation routes read through the same limit (and are not rate-limited)
    conv = b'{"title": "' + b"t" * 300 + b'", "system": "' + b"s" * 650 + b'"}'
    assert len(conv) < 1000
    assert httpx.post(f"{keyed.url}/v1/conversations", content=conv, headers=h, timeout=60).status_code == 200
    over = conv.replace(b"s" * 650, b"s" * 700)
    assert httpx.post(f"{keyed.url}/v1/conversations", content=over, headers=h, timeout=60).status_code == 413

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"title": "'
        for _ in range(10):
            yield b"t" * 200

    streamed = httpx.post(f"{keyed.url}/v1/conversations", content=chunks(), headers=h, timeout=60)
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "request_too_large"
    if load_kernel() is not None:  # a server at the default limit (1 MiB) takes the body keyed refused
        r = httpx.post(f"{c_step.url}/v1/chat/completions", content=chat_body(1500),
                       headers={"content-type": "application/json"}, timeout=60)
        assert r.status_code == 200, r.text


# ---- colossus chat --url ----


def test_chat_takes_the_key_from_the_environment(keyed, lively):
    r = run_cli("chat", "--url", keyed.url, "--temperature", "0", stdin="Where is Sitor Vale?\n/exit\n",
                COLOSSUS_API_KEY=KEY_CHAT)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"Chatting with {lively.name} at {keyed.url}." in r.stdout
    reply = r.stdout.split("assistant> ", 1)[1].split("you> ", 1)[0]
    assert reply.strip(), r.stdout  # a reply was printed
    assert "(error" not in r.stdout and "Traceback" not in r.stderr


@pytest.mark.parametrize("key", [WRONG, None])
def test_chat_with_a_wrong_or_no_key_is_one_clear_line(keyed, key):
    env = {"COLOSSUS_API_KEY": key} if key else {}
    r = run_cli("chat", "--url", keyed.url, stdin="hello\n/exit\n", **env)
    assert r.returncode == 2
    assert r.stderr == ("colossus: error: the server answered 401: missing or invalid API key: send "
                        "`Authorization: Bearer KEY` (pass --api-key)\n")
    assert "assistant>" not in r.stdout


def test_no_key_reaches_the_log(keyed):
    """Last in this file: by now every key (and a wrong one) has been used on keyed."""
    httpx.get(f"{keyed.url}/v1/models", headers=bearer(WRONG), timeout=30)
    log = keyed.wait_log("GET /v1/models")
    assert "Serving" in log and "Application startup complete" in log
    for key in (*KEYS, WRONG):
        assert key not in log
