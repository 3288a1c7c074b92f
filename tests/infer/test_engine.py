"""The serving engine end to end on a tiny random model: continuous batching, sampling per request,
stop strings, logprobs, prefix cache, cancellation, queueing, and an event loop that never blocks."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from contextlib import contextmanager

import pytest
import torch

from colossus.errors import ColossusError
from colossus.infer import engine as engine_module
from colossus.infer.cpu_decode import load_kernel
from colossus.infer.engine import Delta, Engine, EngineFull, PromptTooLong
from colossus.infer.generate import stream
from colossus.infer.sampling import SamplingParams
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

GREEDY = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
# the engine's two forward paths: one C call (prefills with the decode rows), and PyTorch ops
KERNELS = pytest.mark.parametrize("kernel", [
    pytest.param("c", marks=pytest.mark.skipif(load_kernel() is None, reason="no C compiler")), "torch"])
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.fixture(scope="module")
def model(tok) -> GPT:
    """Random weights with spread-out logits (greedy choices are clear, sampling has something to do) and
    sharp attention (every cached key and value matters: a wrong one changes the output)."""
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=128, n_layer=2, d_model=64, n_head=4, n_kv_head=2))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
        for blk in m.blocks:
            blk.attn.q_norm.weight.fill_(2.0)
            blk.attn.k_norm.weight.fill_(2.0)
    return m.eval()


@contextmanager
def running(model, tok, **kw):
    engine = Engine(model, tok, **{"max_batch": 8, **kw})
    engine.start()
    try:
        yield engine
    finally:
        engine.shutdown()


async def collect(engine: Engine, prompt: list[int], params: SamplingParams = GREEDY, log: list | None = None,
                  name: str = "") -> list[Delta]:
    out = []
    async for d in engine.generate(prompt, params):
        out.append(d)
        if log is not None:
            log.append((name, d.completion_tokens, d.finish_reason))
    return out


def ids(deltas: list[Delta]) -> list[int]:
    return [t for d in deltas for t in d.token_ids]


def text(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


def alone(engine: Engine, prompt: list[int], params: SamplingParams = GREEDY) -> list[Delta]:
    return asyncio.run(collect(engine, prompt, params))


async def steps(engine: Engine, n: int) -> None:
    """Let the engine take n more steps, then hold it there. The wait runs in a thread, so this event loop stays
    free to receive what those steps send."""
    engine.resume(n)
    await asyncio.to_thread(engine.wait_held)


async def until(condition, what: str, timeout: float = 120.0) -> None:
    """Yield to the event loop until condition() holds (the timeout only bounds a broken engine)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.001)


async def together(engine: Engine, *jobs) -> list:
    """Run the jobs (coroutines that each submit one request) so that all their requests are admitted in one
    step: the engine is held until every one is waiting."""
    engine.pause()
    tasks = [asyncio.ensure_future(j) for j in jobs]
    await until(lambda: engine.stats()["waiting"] == len(tasks), "every request is waiting")
    engine.resume()
    return await asyncio.gather(*tasks)


PROMPTS = [[1, 40, 41, 42, 43], [1, 50], [1, *range(100, 130)], [1, 7, 8, 9, 10, 11, 12, 13, 14]]


def test_last_only_logits_are_the_last_row_of_the_full_logits(model):
    idx = torch.tensor([PROMPTS[2]])
    with torch.no_grad():
        assert torch.allclose(model(idx, last_only=True), model(idx)[:, -1:], atol=1e-5)


@KERNELS
def test_greedy_equals_a_plain_kv_cache_run_and_the_text_is_the_decoded_ids(model, tok, kernel):
    with running(model, tok, kernel=kernel) as engine:
        got = alone(engine, PROMPTS[0])
    ref = [t for t, _ in stream(model, PROMPTS[0], GREEDY, set())]
    assert ids(got) == ref and len(got) == GREEDY.max_tokens
    assert text(got) == tok.decode(ref)
    assert got[-1].finish_reason == "length" and got[-1].completion_tokens == GREEDY.max_tokens
    assert all(d.finish_reason is None for d in got[:-1]) and got[-1].prompt_tokens == len(PROMPTS[0])


@KERNELS
def test_requests_joining_mid_run_get_the_same_output_as_alone(model, tok, kernel):
    with running(model, tok, kernel=kernel) as engine:
        refs = [ids(alone(engine, p)) for p in PROMPTS]

        async def staggered():
            log: list = []
            long = SamplingParams(temperature=0, max_tokens=60, ignore_eos=True)
            engine.pause()
            first = asyncio.ensure_future(collect(engine, PROMPTS[0], long, log, "first"))
            await until(lambda: engine.stats()["waiting"] == 1, "the first request is waiting")
            await steps(engine, 5)  # the others join once the first has 5 of its 60 tokens
            # different lengths: when one leaves, the last running request moves into its KV slot
            rest = asyncio.ensure_future(together(engine, *[
                collect(engine, p, SamplingParams(temperature=0, max_tokens=8 * i, ignore_eos=True), log, str(i))
                for i, p in enumerate(PROMPTS[1:], 1)]))
            return await first, await rest, log

        first, rest, log = asyncio.run(staggered())
    assert ids(first)[:GREEDY.max_tokens] == refs[0]
    for i, got in enumerate(rest, 1):
        assert ids(got) == refs[i][:8 * i], f"prompt {i} changed when batched"
    first_done = next(i for i, (n, _, f) in enumerate(log) if n == "first" and f)
    assert all(n != "first" or f is None for n, _, f in log[:first_done])
    assert {n for n, _, f in log[:first_done] if f} == {"1", "2", "3"}  # they ran and left while the first ran


@KERNELS
def test_same_seed_same_text_alone_and_batched_with_others(model, tok, kernel):
    p = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, seed=7, ignore_eos=True)
    with running(model, tok, kernel=kernel) as engine:
        a = ids(alone(engine, PROMPTS[0], p))
        b = ids(alone(engine, PROMPTS[0], p))
        c = ids(alone(engine, PROMPTS[0], SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, seed=8,
                                                         ignore_eos=True)))

        async def batched():
            others = [collect(engine, PROMPTS[2], SamplingParams(temperature=1.2, top_k=5, max_tokens=30)),
                      collect(engine, PROMPTS[1], SamplingParams(temperature=1.0, max_tokens=10)),  # no seed
                      collect(engine, PROMPTS[3], SamplingParams(temperature=0.8, presence_penalty=1.0, seed=1,
                                                                max_tokens=20))]
            return await together(engine, collect(engine, PROMPTS[0], p), *others)

        d = ids(asyncio.run(batched())[0])
    assert a == b == d and a != c


@KERNELS
def test_penalties_change_the_output_and_only_their_own_row(model, tok, kernel):
    with running(model, tok, kernel=kernel) as engine:
        plain = ids(alone(engine, PROMPTS[1]))
        rep = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True, repetition_penalty=1000.0)
        penalised = ids(alone(engine, PROMPTS[1], rep))

        short = SamplingParams(temperature=0, max_tokens=5, ignore_eos=True)
        # admitted in one step; the short one leaves first, and the penalised one moves into its slot
        got = asyncio.run(together(engine, collect(engine, PROMPTS[1], short), collect(engine, PROMPTS[1]),
                                   collect(engine, PROMPTS[1], rep)))
    assert len(set(plain)) < len(plain)  # the random model repeats itself...
    assert len(set(penalised)) == len(penalised) and not set(penalised) & set(PROMPTS[1])  # ...unless penalised
    assert ids(got[0]) == plain[:5] and ids(got[1]) == plain and ids(got[2]) == penalised


def test_sampling_parameters_reach_the_engine(model, tok):
    prompt = PROMPTS[3]
    with running(model, tok) as engine:
        greedy = ids(alone(engine, prompt))
        top1 = ids(alone(engine, prompt, SamplingParams(temperature=2.0, top_k=1, max_tokens=24, ignore_eos=True)))
        tiny_p = ids(alone(engine, prompt, SamplingParams(temperature=2.0, top_p=1e-6, max_tokens=24,
                                                          ignore_eos=True)))
        min_p = ids(alone(engine, prompt, SamplingParams(temperature=2.0, min_p=1.0, max_tokens=24, ignore_eos=True)))
        hot = ids(alone(engine, prompt, SamplingParams(temperature=2.0, max_tokens=24, seed=0, ignore_eos=True)))
        freq = ids(alone(engine, prompt, SamplingParams(temperature=0, frequency_penalty=2.0, max_tokens=24,
                                                        ignore_eos=True)))
    assert top1 == tiny_p == min_p == greedy  # each filter alone leaves only the top token
    assert hot != greedy and freq != greedy


def test_end_of_turn_stops_unless_ignore_eos(model, tok):
    with running(model, tok) as engine:
        ref = ids(alone(engine, PROMPTS[0]))
        eos = ref[5]
        with running(model, tok, stop_ids={eos}) as stopping:
            got = alone(stopping, PROMPTS[0])
            ignored = alone(stopping, PROMPTS[0], GREEDY)
            kept = alone(stopping, PROMPTS[0], SamplingParams(temperature=0, max_tokens=24))
    assert ids(kept) == ref[:ref.index(eos)] and kept[-1].finish_reason == "stop"
    assert kept[-1].completion_tokens == ref.index(eos) + 1  # the end-of-turn token counts, and is not text
    assert ids(got) == ids(ignored) == ref


def test_stop_strings_are_trimmed_even_across_tokens_and_never_streamed(model, tok):
    with running(model, tok) as engine:
        full = alone(engine, PROMPTS[2])
        pieces = [d.text for d in full]
        whole = text(full)
        i = next(i for i in range(3, len(pieces) - 3) if pieces[i] and pieces[i + 1])
        start = sum(len(p) for p in pieces[:i])
        at = start + len(pieces[i]) - 1
        stop = whole[at:at + 2]  # the last character of one token and the first of the next
        assert whole.index(stop) == at
        got = alone(engine, PROMPTS[2], SamplingParams(temperature=0, max_tokens=24, ignore_eos=True,
                                                        stop=("never appears", stop)))
    assert text(got) == whole[:whole.index(stop)] and got[-1].finish_reason == "stop"
    streamed = ""
    for d in got:
        streamed += d.text
        assert whole.startswith(streamed)  # nothing past the cut was ever sent


def test_logprobs_are_the_models_distribution(model, tok):
    V = tok.vocab_size
    with running(model, tok) as engine:
        got = alone(engine, PROMPTS[1], SamplingParams(temperature=1.0, max_tokens=6, seed=3, logprobs=V,
                                                        ignore_eos=True))
        three = alone(engine, PROMPTS[1], SamplingParams(temperature=0, max_tokens=4, logprobs=3, ignore_eos=True))
    seq = list(PROMPTS[1])
    for d in got:
        (lp,) = d.logprobs
        with torch.no_grad():
            direct = model(torch.tensor([seq]))[0, -1].log_softmax(-1)
        t = d.token_ids[0]
        assert lp.logprob == pytest.approx(direct[t].item(), abs=1e-4)
        assert len(lp.top) == V and sum(torch.tensor([x[1] for x in lp.top]).exp().tolist()) == pytest.approx(1, 1e-4)
        assert bytes(lp.bytes).decode("utf-8", errors="replace") == lp.token
        seq.append(t)
    raw = b"".join(bytes(d.logprobs[0].bytes) for d in got).decode("utf-8", errors="replace")
    assert raw.removeprefix(" ") == tok.decode(seq[len(PROMPTS[1]):])
    for d in three:
        (lp,) = d.logprobs
        assert len(lp.top) == 3 and lp.top[0][1] == pytest.approx(lp.logprob) and lp.top[0][1] >= lp.top[2][1]


@KERNELS
def test_prefix_cache_reuses_a_shared_system_prompt_with_the_same_output(model, tok, kernel):
    system = [1, 2, *range(200, 240)]  # 42 tokens: two full blocks of 16
    first, second = system + [3, 60, 61, 62, 5], system + [3, 70, 71, 5]
    with running(model, tok, prefix_cache_tokens=0, kernel=kernel) as plain:
        ref = ids(alone(plain, second))
        assert plain.stats()["prefix_cache_tokens"] == 0
    with running(model, tok, kernel=kernel) as engine:
        a = alone(engine, first)
        alone(engine, list(range(300, 350)))  # overwrites the slot: b's prefix must come from the cache
        b = alone(engine, second)
        stats = engine.stats()
    assert a[-1].cached_tokens == 0 and b[-1].cached_tokens == 32
    assert ids(b) == ref
    assert stats["prefix_hit_tokens_total"] == 32 and stats["prefix_cache_tokens"] >= 32


def test_a_bfloat16_kv_cache_halves_the_pool_and_both_kernels_agree(model, tok):
    """kv_dtype=bfloat16: keys and values rounded when stored; the C step and the PyTorch ops read the same
    pool the same way, batching and the prefix cache change nothing, and the pool takes half the bytes."""
    system = [1, 2, *range(200, 240)]
    prompts = [system + [3, 60, 61, 5], system + [3, 70, 5], PROMPTS[1]]
    outs = {}
    for kernel in ["torch"] + (["c"] if load_kernel() is not None else []):
        with running(model, tok, kernel=kernel, kv_dtype="bfloat16") as engine:
            assert engine.pool.k.dtype == torch.bfloat16 and engine.prefix.k.dtype == torch.bfloat16
            alone_ids = [ids(alone(engine, p)) for p in prompts]  # the second reuses the first's system prompt

            batched = [ids(d) for d in asyncio.run(together(engine, *(collect(engine, p) for p in prompts)))]
            stats = engine.stats()
        assert batched == alone_ids and stats["prefix_hit_tokens_total"] > 0
        outs[kernel] = alone_ids
    assert all(o == outs["torch"] for o in outs.values())
    with running(model, tok) as f32:
        assert f32.pool.k.dtype == torch.float32 and engine.pool.bytes_per_token * 2 == f32.pool.bytes_per_token
    with pytest.raises(ColossusError, match="kv_dtype must be one of"):
        Engine(model, tok, kv_dtype="int8")


def test_closing_the_stream_aborts_the_request_and_frees_its_kv(model, tok):
    long = SamplingParams(temperature=0, max_tokens=100, ignore_eos=True)

    async def walk_away(engine: Engine, how: str) -> list[dict]:
        engine.pause()
        if how == "aclose":
            gen = engine.generate(PROMPTS[0], long)
            first = asyncio.ensure_future(gen.__anext__())
            await steps(engine, 3)  # held with 3 of its 100 tokens made
            await first
            during = engine.stats()
            await gen.aclose()
        else:  # the client's task is cancelled (an HTTP disconnect)
            task = asyncio.ensure_future(collect(engine, PROMPTS[0], long))
            await until(lambda: engine.stats()["waiting"] == 1, "the request is waiting")
            await steps(engine, 3)
            during = engine.stats()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # still held: an abort is handled without another step
        await until(lambda: engine.stats()["kv_used_tokens"] == 0, "the aborted request's KV is freed")
        after = engine.stats()
        engine.resume()
        return [during, after]

    with running(model, tok) as engine:
        for n, how in enumerate(("aclose", "cancel"), 1):
            during, after = asyncio.run(walk_away(engine, how))
            assert during["kv_used_tokens"] == len(PROMPTS[0]) + 100 and during["running"] == 1
            assert after["kv_used_tokens"] == 0 and after["running"] == 0
            assert after["requests_aborted_total"] == n and after["generation_tokens_total"] == 3 * n


def test_abort_by_id_ends_the_stream_with_abort(model, tok):
    async def go(engine):
        engine.pause()
        gen = engine.generate(PROMPTS[0], SamplingParams(temperature=0, max_tokens=100, ignore_eos=True), "mine")
        first = asyncio.ensure_future(gen.__anext__())
        await steps(engine, 2)
        got = [await first]
        engine.abort("mine")
        engine.abort("nobody")  # unknown ids are ignored
        got += [d async for d in gen]  # the engine is still held: the abort needs no step
        engine.resume()
        return got

    with running(model, tok) as engine:
        got = asyncio.run(go(engine))
    assert [d.finish_reason for d in got] == [None, None, "abort"] and got[-1].completion_tokens == 2


def test_a_full_queue_raises_engine_full_and_frees_up(model, tok):
    long = SamplingParams(temperature=0, max_tokens=100, ignore_eos=True)

    async def go(engine):
        engine.pause()
        a, b = engine.generate(PROMPTS[0], long), engine.generate(PROMPTS[1], long)
        first_a = asyncio.ensure_future(a.__anext__())
        await steps(engine, 1)
        await first_a  # a runs, held after its first token
        waiting = asyncio.ensure_future(b.__anext__())  # b is queued behind it (max_batch=1)
        await until(lambda: engine.stats()["waiting"] == 1, "b is waiting")
        assert engine.stats()["running"] == 1 and not waiting.done()
        with pytest.raises(EngineFull):  # max_batch + max_queue = 2 requests are in
            await engine.generate(PROMPTS[2], GREEDY).__anext__()
        await a.aclose()  # a slot frees, the waiting request runs
        await steps(engine, 1)
        first = await waiting
        await b.aclose()
        engine.resume()
        return first

    with running(model, tok, max_batch=1, max_queue=1) as engine:
        first = asyncio.run(go(engine))
        assert first.token_ids and first.finish_reason is None
        assert ids(alone(engine, PROMPTS[1])) == ids(alone(engine, PROMPTS[1]))  # still serving


def test_a_held_engine_takes_exactly_the_steps_it_is_allowed(model, tok):
    async def go(engine):
        engine.pause()
        task = asyncio.ensure_future(collect(engine, PROMPTS[0], GREEDY))
        await until(lambda: engine.stats()["waiting"] == 1, "the request is waiting")
        assert engine.wait_held() == 0  # nothing ran while held
        await steps(engine, 4)  # the prompt and a first token, then three more
        made = engine.stats()["generation_tokens_total"]
        engine.resume()
        return made, await task

    with running(model, tok) as engine:
        made, got = asyncio.run(go(engine))
        assert made == 4 and engine.stats()["steps_total"] == GREEDY.max_tokens  # one step per token
        assert ids(got) == ids(alone(engine, PROMPTS[0]))  # holding changes nothing in the output
    with pytest.raises(ColossusError, match="steps must be >= 0"):
        Engine(model, tok).resume(-1)


def test_kv_budget_queues_requests_that_do_not_fit_yet(model, tok):
    with running(model, tok, kv_tokens=128) as engine:  # room for one request of 128 reserved tokens at a time

        async def go():
            p = SamplingParams(temperature=0, max_tokens=128 - len(PROMPTS[1]), ignore_eos=True)
            log: list = []
            await asyncio.gather(collect(engine, PROMPTS[1], p, log, "a"), collect(engine, PROMPTS[1], p, log, "b"))
            return log

        log = asyncio.run(go())
        assert engine.stats()["kv_total_tokens"] == 128
    names = [n for n, _, _ in log]
    assert names.index("b") > max(i for i, n in enumerate(names) if n == "a")  # b waited for a


def test_one_step_admits_prompts_up_to_the_prefill_budget_and_a_longer_one_alone(model, tok, monkeypatch):
    monkeypatch.setattr(engine_module, "PREFILL_TOKENS", 12)
    engine = Engine(model, tok, max_batch=8)
    engine._thread = object()  # accept submissions without running the loop: the steps are taken by hand
    loop = asyncio.new_event_loop()
    try:
        for prompt in (PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[2], PROMPTS[1]):  # 5, 2, 5, 31, 2 tokens
            engine._submit(prompt, GREEDY, None, loop)
        steps = []
        while engine._waiting:
            with engine._cv:
                admitted = engine._admit()
            engine._running += admitted
            steps.append([len(r.prompt) for r in admitted])
    finally:
        loop.close()
    assert steps == [[5, 2, 5], [31], [2]]


def test_prompt_too_long_names_both_lengths(model, tok):
    with running(model, tok) as engine:
        with pytest.raises(PromptTooLong, match=r"100 tokens.*max_tokens is 50.*context of 128"):
            alone(engine, [1] * 100, SamplingParams(max_tokens=50))
        with pytest.raises(ColossusError, match="integers"):
            alone(engine, [1, tok.vocab_size + 5])


def test_the_event_loop_runs_during_every_step(model, tok, monkeypatch):
    """Each step waits until the event loop has run once more: had a step run in the event loop's thread, it
    would wait forever, and this test would fail at the wait's bound."""
    with running(model, tok, kernel="torch") as engine:
        ticked = threading.Event()
        step = engine._step

        def step_after_a_tick(admitted, events):
            assert ticked.wait(60), "the event loop did not run while the engine stepped"
            ticked.clear()
            step(admitted, events)

        monkeypatch.setattr(engine, "_step", step_after_a_tick)

        async def go():
            async def ticker():
                while True:
                    ticked.set()
                    await asyncio.sleep(0)

            t = asyncio.ensure_future(ticker())
            jobs = [collect(engine, [1, 2, 3 + i], SamplingParams(temperature=0.5, max_tokens=40, ignore_eos=True))
                    for i in range(4)]
            out = await asyncio.gather(*jobs)
            t.cancel()
            return out

        out = asyncio.run(go())
    assert [len(ids(d)) for d in out] == [40] * 4


def test_generation_goes_on_while_the_event_loop_is_blocked(model, tok):
    """The model runs in the engine's thread, not in the event loop: with the event loop blocked (no await),
    the tokens still come."""
    async def go(engine):
        gen = engine.generate(PROMPTS[0], SamplingParams(temperature=0, max_tokens=100, ignore_eos=True))
        await gen.__anext__()
        before = engine.stats()["generation_tokens_total"]
        deadline = time.monotonic() + 120  # a bound for a broken engine, not a speed
        while engine.stats()["generation_tokens_total"] < before + 10:  # blocks this event loop
            assert time.monotonic() < deadline, "no tokens while the event loop was blocked"
            time.sleep(0.001)
        rest = [d async for d in gen]
        return rest

    with running(model, tok) as engine:
        rest = asyncio.run(go(engine))
    assert rest[-1].finish_reason == "length" and rest[-1].completion_tokens == 100


def test_shutdown_aborts_what_runs(model, tok):
    engine = Engine(model, tok, max_batch=2)
    engine.start()

    async def go():
        engine.pause()
        gen = engine.generate(PROMPTS[0], SamplingParams(temperature=0, max_tokens=100, ignore_eos=True))
        first = asyncio.ensure_future(gen.__anext__())
        await steps(engine, 1)
        await first
        engine.shutdown()  # while held: the request is certainly running
        return [d async for d in gen]

    rest = asyncio.run(go())
    assert [d.finish_reason for d in rest] == ["abort"] and engine.stats()["kv_used_tokens"] == 0


# ---- on a GPU (skipped without one): the PyTorch path, and bfloat16 weights meaning a bfloat16 model ----


@pytest.fixture()
def gpu_model(model):
    return copy.deepcopy(model).to("cuda")


@CUDA
def test_greedy_on_the_gpu_equals_a_plain_kv_cache_run_alone_and_batched(gpu_model, tok):
    with running(gpu_model, tok, device="cuda") as engine:
        assert engine.kernel == "torch" and engine.pool.k.device.type == "cuda"
        got = [ids(alone(engine, p)) for p in PROMPTS]

        async def together():
            return await asyncio.gather(*(collect(engine, p) for p in PROMPTS))

        batched = [ids(d) for d in asyncio.run(together())]
        assert engine.stats()["kv_used_tokens"] == 0
    refs = [[t for t, _ in stream(gpu_model, p, GREEDY, set())] for p in PROMPTS]
    assert got == refs and batched == refs


@CUDA
def test_bfloat16_weights_on_the_gpu_run_the_whole_model_in_bfloat16(gpu_model, tok):
    with running(gpu_model, tok, device="cuda", weights="bfloat16") as engine:
        assert {p.dtype for p in gpu_model.parameters()} == {torch.bfloat16}
        assert engine.pool.k.dtype == torch.bfloat16
        seeded = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=24, seed=3, ignore_eos=True)
        a, b = ids(alone(engine, PROMPTS[0], seeded)), ids(alone(engine, PROMPTS[0], seeded))
        greedy = [ids(alone(engine, p)) for p in PROMPTS]
        assert engine.stats()["kv_used_tokens"] == 0
    assert a == b and len(a) == 24 and all(len(g) == GREEDY.max_tokens for g in greedy)
