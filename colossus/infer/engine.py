"""The serving engine: one loop, in its own thread, batches every decode step across all running
requests (continuous batching: requests join and leave at any step).

    engine = Engine(model, tokenizer)
    engine.start()
    async for delta in engine.generate(prompt_ids, SamplingParams(temperature=0)):
        print(delta.text, end="")

Every step of the loop:
1. aborted requests leave and their KV slots are freed (a client that goes away aborts its request);
2. waiting requests are admitted first come, first served, while a batch slot is free, the KV budget
   holds their prompt + max_tokens (reserved up front, so a running request never runs out of cache and
   nothing is ever preempted), and the step's prompts stay within PREFILL_TOKENS (one longer prompt is
   admitted alone); the prefix cache supplies the KV of any prefix of their prompts it holds;
3. one forward pass feeds the last token of every running request at its own position, and prefills the
   admitted requests' prompts;
4. one sampling pass chooses every row's next token with that row's parameters (colossus.infer.logits);
5. each request's Delta goes to its asyncio queue through loop.call_soon_threadsafe, so the event loop
   never waits on the model.

Queueing: the engine holds at most max_batch + max_queue requests, running or waiting (FCFS); one more
makes generate() raise EngineFull, which an HTTP server answers with 503 (retry later).

Holding: pause() stops the loop between two steps (running requests keep their slots, new ones wait,
aborts are still handled) and resume(steps=k) lets it take k more steps, then hold again. Tests use it to
put requests exactly where they need them (running, waiting, half-generated) without guessing how fast a
step is; a server could use it to swap weights between steps.

The forward pass (3.) is one C call on CPU (colossus.infer.cpu_decode) when a C compiler is found: the
decode rows and the new prompts' tokens together, with the GIL released, on kernel_threads threads
(default: the cores, up to MAX_KERNEL_THREADS). Otherwise (or kernel="torch")
it is GPT.decode_step's PyTorch ops, then one GPT.forward for all the new prompts (left-padded,
kv_pool.BatchPrefillView). With kernel="auto" (the default) and the C step built, the engine first times
both paths on its own pool, at decode batches of 1, 2, 4, ... rows and prompts of 16 to PREFILL_TOKENS
tokens (colossus.infer.step_choice; once per machine and model shape, cached beside the compiled kernel),
logs where each is faster, and then takes for every step the one estimated faster for its decode rows
and prompt tokens (PyTorch ops only where they win by step_choice.MARGIN, running on the C step's
threads); kernel="c" or "torch" forces one. stats() counts the steps of each.

On a GPU the decode step is replayed from CUDA graphs captured at start (colossus.infer.cuda_graphs;
cuda_graphs=False runs it op by op), and attention leaves out cuDNN's backend (GPU_ATTENTION).
weights="bfloat16" rounds the model's matmul weights to bfloat16 (in place, so that every path computes
the same model) and lets the C step read them at half the bytes; arithmetic
stays float32. On a GPU it makes the whole model bfloat16 instead. kv_dtype (default: the weights' type)
is what the KV pool and the prefix cache store: bfloat16 halves their memory and what attention reads.

KV memory: a fixed pool of max_batch slots of max_context tokens (colossus.infer.kv_pool), allocated
once; kv_tokens (default: all of it) caps the tokens reserved at once. The prefix cache is a second,
bounded pool (colossus.infer.prefix_cache)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.infer.cpu_decode import DTYPES, CpuDecoder
from colossus.infer.cuda_graphs import DecodeGraphs
from colossus.infer.detokenize import TextStream, TokenTable
from colossus.infer.kv_pool import SlotPool
from colossus.infer.logits import RowParams, apply_penalties, sample_rows, token_logprobs
from colossus.infer.prefix_cache import PrefixCache
from colossus.infer.sampling import SamplingParams
from colossus.infer.step_choice import CONTEXT, StepTimes, cache_key
from colossus.model.copy_head import NO_FOLLOW, FollowMap
from colossus.model.gpt import GPT

log = logging.getLogger(__name__)

KERNELS = ("auto", "c", "torch")
MAX_KERNEL_THREADS = 8  # the C step's default threads: the cores, up to this many (a small model gains no more)
PREFILL_TOKENS = 512  # prompt tokens admitted into one step (one longer prompt is admitted alone)
# attention on a GPU without cuDNN's backend: it builds a plan for each new shape, and a decode step's key length
# is new at every step (on an H100 a 32-stream step took 66.6 ms with it, 9.2 without: docs/benchmarks.md, "What
# was tried"); the others take any length
GPU_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]]  # (token, logprob, bytes) of the top k, most likely first


@dataclass
class Delta:
    """One event of a request's stream."""

    text: str  # new text, UTF-8 safe, stop-string text held back until it cannot match
    token_ids: list[int]  # ids generated since the last Delta (the end-of-turn id is not text: left out)
    logprobs: list[TokenLogprob] | None
    finish_reason: str | None  # None while running; then "stop", "length" or "abort"
    prompt_tokens: int  # length of the prompt
    completion_tokens: int  # generated so far (an end-of-turn token counts, as in OpenAI's usage)
    cached_tokens: int  # prompt tokens whose KV came from the prefix cache


class EngineFull(ColossusError):
    """The waiting queue is full: the caller answers 503 (retry later)."""


class PromptTooLong(ColossusError):
    """prompt_tokens + max_tokens exceed the model's context."""


class EngineError(ColossusError):
    """The engine failed while running a request (or is shut down): not the request's fault."""


class _Request:
    def __init__(self, rid: str, prompt: list[int], params: SamplingParams, loop: asyncio.AbstractEventLoop,
                 text: TextStream):
        self.rid, self.prompt, self.params, self.loop, self.text = rid, prompt, params, loop, text
        self.queue: asyncio.Queue = asyncio.Queue()
        self.rng = random.Random(params.seed) if params.seed is not None else None
        self.state = "waiting"  # waiting -> running -> done
        self.reserved = len(prompt) + params.max_tokens  # KV tokens it may ever need
        self.slot = -1
        self.length = 0  # tokens whose KV is in the slot
        self.out: list[int] = []  # generated ids; the last one is fed at the next step
        self.cached = 0
        self.follow = FollowMap()  # a copy head's follow ids of the tokens fed so far (used for one only)

    def prompt_follow(self) -> tuple[int, ...]:
        """The follow ids of the prompt's last token, its whole prompt fed (once, at the prefill)."""
        return self.follow.extend(self.prompt)[-1]

    def next_follow(self) -> tuple[int, ...]:
        """The follow ids of the token fed at this step, the last one generated."""
        return self.follow.extend(self.out[-1:])[0]


class Engine:
    def __init__(self, model: GPT, tokenizer: Tokenizer, *, max_batch: int = 32, max_queue: int = 256,
                 kv_tokens: int | None = None, prefix_cache_tokens: int | None = None,
                 device: str = "cpu", stop_ids: set[int] | None = None, weights: str = "float32",
                 kernel: str = "auto", kernel_threads: int | None = None, kv_dtype: str | None = None,
                 cuda_graphs: bool = True, max_context: int | None = None):
        if max_batch < 1 or max_queue < 0:
            raise ColossusError(f"max_batch must be >= 1 and max_queue >= 0, not {max_batch} and {max_queue}")
        if weights not in DTYPES or kernel not in KERNELS:
            raise ColossusError(f"weights must be one of {', '.join(DTYPES)} and kernel one of {', '.join(KERNELS)}, "
                                f"not {weights!r} and {kernel!r}")
        kv_dtype = kv_dtype or weights
        if kv_dtype not in DTYPES:
            raise ColossusError(f"kv_dtype must be one of {', '.join(DTYPES)}, not {kv_dtype!r}")
        if kernel_threads is not None and kernel_threads < 1:
            raise ColossusError(f"kernel_threads must be >= 1, not {kernel_threads}")
        self.model, self.tok = model.eval(), tokenizer
        cfg = model.cfg
        if max_context is not None and not 1 <= max_context <= cfg.seq_len:
            raise ColossusError(f"max_context must be between 1 and the model's context of {cfg.seq_len} tokens, "
                                f"not {max_context}")
        self.max_context, self.max_batch, self.max_queue = max_context or cfg.seq_len, max_batch, max_queue
        self.device = torch.device(device)
        pool_tokens = max_batch * self.max_context
        self.kv_total = pool_tokens if kv_tokens is None else min(kv_tokens, pool_tokens)
        if self.kv_total < self.max_context:
            raise ColossusError(f"kv_tokens {kv_tokens} is less than the model's context of {self.max_context} "
                                "tokens: a long request could never run")
        if weights == "bfloat16" and next(model.parameters()).dtype == torch.float32:
            if self.device.type == "cpu":
                model.round_matmul_weights(torch.bfloat16)
            else:  # on an accelerator, bfloat16 arithmetic as well (its KV cache too)
                model.to(torch.bfloat16)
        dtype = next(model.parameters()).dtype
        kv = DTYPES[kv_dtype] if dtype == torch.float32 else dtype  # a half-precision model keeps its own type
        self.pool = SlotPool(cfg, max_batch, self.max_context, self.device, dtype, kv)
        kv_name = str(kv).removeprefix("torch.")
        self.cdec: CpuDecoder | None = None
        if kernel != "torch" and self.device.type == "cpu" and dtype == torch.float32:
            threads = kernel_threads or min(os.cpu_count() or 1, MAX_KERNEL_THREADS)
            self.cdec = CpuDecoder.create(model, self.pool, weights, threads)
        if kernel == "c" and self.cdec is None:
            reason = CpuDecoder.unsupported(model)
            raise ColossusError(f"kernel 'c' cannot run this model: {reason}" if reason else
                                "kernel 'c' needs a C compiler ($CC, cc, gcc or clang) and a float32 model on CPU")
        # "auto" with the C step: each step takes whichever path this machine runs faster at its size
        self.step_times: StepTimes | None = None
        if kernel == "auto" and self.cdec is not None:
            self.step_times = self._time_paths(weights, kv_name)
        self.kernel = "torch" if self.cdec is None else "auto" if self.step_times else "c"
        self.graphs: DecodeGraphs | None = None  # on a GPU: decode steps replayed from CUDA graphs
        if cuda_graphs and self.device.type == "cuda" and cfg.n_experts:
            log.warning("CUDA graphs: not used for this model, its Mixture-of-Experts routes each token with "
                        "shapes known only when the step runs; decode steps run op by op")
        elif cuda_graphs and self.device.type == "cuda":
            t = time.perf_counter()
            try:
                with self._attention(), torch.inference_mode():
                    self.graphs = DecodeGraphs(model, self.pool, max_batch)
                log.info("decode steps: %d CUDA graphs (batch sizes up to %d, key lengths up to %d), captured in "
                         "%.1fs", len(self.graphs), max_batch, self.max_context, time.perf_counter() - t)
            except RuntimeError as e:
                log.warning("CUDA graphs could not be captured, decode steps run op by op: %s", e)
        log.info("forward step: %s, %s matmul weights, %s KV cache", f"one C call on {self.cdec.threads} thread(s)"
                 if self.cdec else "PyTorch ops", weights, kv_name)
        if self.cdec is not None:
            log.info("C step built for %s", self.cdec.kernel.describe())
        if self.step_times is not None:
            log.info("forward path by step size (--kernel c or torch to force one): %s", self.step_times.summary())
        prefix_tokens = self.kv_total // 4 if prefix_cache_tokens is None else prefix_cache_tokens
        self.prefix = PrefixCache(cfg, prefix_tokens, device=self.device, dtype=kv) \
            if prefix_tokens >= PrefixCache.BLOCK else None
        prefix_held = self.prefix.capacity * self.prefix.block if self.prefix else 0
        log.info("KV cache: %d slots x %d tokens (%.0f MiB) and a prefix cache of %d tokens (%.0f MiB)", max_batch,
                 self.max_context, pool_tokens * self.pool.bytes_per_token / 2**20, prefix_held,
                 prefix_held * self.pool.bytes_per_token / 2**20)
        self.table = TokenTable(tokenizer, cfg.vocab_size)
        self.stop_ids = frozenset(tokenizer.stop_ids if stop_ids is None else stop_ids)
        self.counts: torch.Tensor | None = None  # (slots, V) for penalties, made when first needed
        self.prompt_seen: torch.Tensor | None = None
        self.rng = random.Random()  # draws for the rows without a seed

        self._cv = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._aborts: list[_Request] = []
        self._active: dict[str, _Request] = {}  # waiting or running, by request id
        self._running: list[_Request] = []  # slot order; touched by the engine thread only
        self._rows: RowParams | None = None  # sampling tensors of _running; None when it changed
        self._thread: threading.Thread | None = None
        self._closed = False
        self._ids = itertools.count()
        self._reserved = 0
        self._allowed: int | None = None  # steps the loop may take before it holds; None: no limit
        self._parked = False  # the loop waits for work, or is held
        self._totals = dict.fromkeys(("prefix_hit_tokens_total", "prompt_tokens_total", "generation_tokens_total",
                                      "requests_finished_total", "requests_aborted_total", "steps_total",
                                      "c_steps_total", "torch_steps_total"), 0)

    # ---- the asyncio side ----

    def start(self) -> None:
        with self._cv:
            if self._thread is not None and self._thread.is_alive():
                return
            self._closed = False
            self._thread = threading.Thread(target=self._loop, name="colossus-engine", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def pause(self) -> None:
        """Hold the loop before its next step (the step in flight finishes first). Running requests keep
        their slots and KV, new requests wait, aborts are still handled; resume() lets it go on."""
        with self._cv:
            self._allowed = 0

    def resume(self, steps: int | None = None) -> None:
        """Let the loop run: `steps` more steps, then hold again (None: until the next pause())."""
        if steps is not None and steps < 0:
            raise ColossusError(f"steps must be >= 0, not {steps}")
        with self._cv:
            self._allowed = steps
            self._cv.notify_all()

    def wait_held(self, timeout: float = 120.0) -> int:
        """Block until the loop holds, having taken the steps resume() allowed -> steps taken so far. Raises
        EngineError when it does not within timeout seconds (a bound for a stuck engine, not a speed)."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._closed or (self._parked and self._allowed == 0), timeout):
                raise EngineError(f"the engine did not hold within {timeout} s")
            return self._totals["steps_total"]

    async def generate(self, prompt_ids: list[int], params: SamplingParams,
                       request_id: str | None = None) -> AsyncIterator[Delta]:
        """Stream the reply to prompt_ids. Raises PromptTooLong or EngineFull before yielding anything;
        closing the iterator early (aclose(), or the task cancelled) aborts the request and frees its KV."""
        req = self._submit(list(prompt_ids), params, request_id, asyncio.get_running_loop())
        done = False
        try:
            while True:
                item = await req.queue.get()
                if isinstance(item, BaseException):
                    done = True
                    raise item
                done = item.finish_reason is not None
                yield item
                if done:
                    return
        finally:
            if not done:
                self._abort(req)

    def abort(self, request_id: str) -> None:
        """Stop a request; its stream ends with finish_reason "abort". Unknown or finished ids: no-op."""
        with self._cv:
            req = self._active.get(request_id)
        if req is not None:
            self._abort(req)

    def stats(self) -> dict:
        with self._cv:
            running, waiting, reserved = len(self._active) - len(self._waiting), len(self._waiting), self._reserved
        return {"running": running, "waiting": waiting, "kv_used_tokens": reserved,
                "kv_total_tokens": self.kv_total, "kv_usage": reserved / self.kv_total,
                "prefix_cache_tokens": self.prefix.tokens if self.prefix else 0, **self._totals}

    def _submit(self, prompt: list[int], params: SamplingParams, request_id: str | None,
                loop: asyncio.AbstractEventLoop) -> _Request:
        if not prompt:
            raise ColossusError("the prompt is empty")
        vocab = self.model.cfg.vocab_size
        if not all(isinstance(t, int) and 0 <= t < vocab for t in prompt):
            raise ColossusError(f"prompt token ids must be integers in [0, {vocab})")
        if len(prompt) + params.max_tokens > self.max_context:
            raise PromptTooLong(f"the prompt has {len(prompt)} tokens and max_tokens is {params.max_tokens}: "
                                f"{len(prompt) + params.max_tokens} tokens exceed the model's context of "
                                f"{self.max_context} tokens")
        with self._cv:
            if self._closed or self._thread is None:
                raise EngineError("the engine is not running")
            if len(self._active) >= self.max_batch + self.max_queue:
                raise EngineFull(f"{len(self._waiting)} requests are already waiting (max_queue {self.max_queue})")
            rid = request_id if request_id is not None else f"req-{next(self._ids)}"
            if rid in self._active:
                raise ColossusError(f"request id {rid!r} is already running")
            req = _Request(rid, prompt, params, loop, TextStream(self.table, params.stop))
            self._active[rid] = req
            self._waiting.append(req)
            self._cv.notify()
        return req

    def _abort(self, req: _Request) -> None:
        with self._cv:
            if req.state == "waiting":
                self._waiting.remove(req)
                req.state = "aborting"
            if req.state != "done":
                self._aborts.append(req)
                self._cv.notify()

    # ---- the engine thread ----

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not (self._closed or self._aborts or self._may_step()):
                        self._parked = True
                        self._cv.notify_all()  # wait_held() may be waiting for this
                        self._cv.wait()
                    self._parked = False
                    if self._closed:
                        break
                    aborts, self._aborts = self._aborts, []
                    stepping = self._may_step()
                    if stepping and self._allowed is not None:
                        self._allowed -= 1
                events: dict = {}
                for req in aborts:
                    self._release(req, "abort", events)
                if stepping:
                    with self._cv:
                        admitted = self._admit()
                    try:
                        with self._attention():
                            self._step(admitted, events)
                    except Exception as e:  # a bug or out of memory: fail what runs, keep serving
                        log.exception("engine step failed")
                        self._fail_running(admitted, EngineError(f"generation failed: {type(e).__name__}: {e}"),
                                           events)
                    self._totals["steps_total"] += 1
                self._deliver(events)
        events = {}
        with self._cv:
            left = [*self._running, *self._waiting, *self._aborts]
            self._waiting.clear()
            self._aborts.clear()
        for req in left:
            self._release(req, "abort", events)
        self._deliver(events)

    def _may_step(self) -> bool:
        """There is work for a step and the loop is not held (called with the lock held)."""
        return self._allowed != 0 and bool(self._waiting or self._running)

    def _attention(self):
        return sdpa_kernel(GPU_ATTENTION) if self.device.type == "cuda" else nullcontext()

    def _admit(self) -> list[_Request]:
        """Pop the waiting requests that fit now, in arrival order (called with the lock held). Prompts of
        at most PREFILL_TOKENS tokens in all join one step (a longer one alone), so that the running
        requests' next token waits for a bounded prefill."""
        out: list[_Request] = []
        prompt_tokens = 0
        while self._waiting and len(self._running) + len(out) < self.max_batch:
            req = self._waiting[0]
            if self._reserved + req.reserved > self.kv_total:
                break  # FCFS: nobody overtakes the head of the queue
            if out and prompt_tokens + len(req.prompt) > PREFILL_TOKENS:
                break
            prompt_tokens += len(req.prompt)
            self._waiting.popleft()
            req.state = "running"
            self._reserved += req.reserved
            out.append(req)
        return out

    def _step(self, admitted: list[_Request], events: dict) -> None:
        if not self._running and not admitted:
            return
        if self.cdec is not None and (self.step_times is None or self.step_times.use_c(
                len(self._running), sum(len(r.prompt) for r in admitted))):
            self._totals["c_steps_total"] += 1
            raw = self._forward_c(admitted)
        else:
            self._totals["torch_steps_total"] += 1
            with self._torch_threads(self.cdec.threads if self.step_times else None):
                logits = [self._decode()] if self._running else []
                for req in admitted:
                    self._place(req)
                if admitted:
                    logits.append(self._prefill(admitted[0]) if len(admitted) == 1 else self._prefill_batch(admitted))
            if not self._running:
                return
            raw = torch.cat(logits) if len(logits) > 1 else logits[0]  # (B, V) in slot order
        if self._rows is None:
            self._rows = RowParams([r.params for r in self._running], [r.rng or self.rng for r in self._running],
                                   raw.size(-1), self.device)
        rows = self._rows
        B = len(self._running)
        if rows.use_penalties:
            tokens = sample_rows(apply_penalties(raw, rows, self.counts[:B], self.prompt_seen[:B]), rows)
            self.counts.index_put_((torch.arange(B, device=self.device), tokens),
                                   torch.ones(B, device=self.device), accumulate=True)
        else:
            tokens = sample_rows(raw, rows)
        lps = token_logprobs(raw, tokens, rows)
        self._emit(tokens.tolist(), lps, rows, events)

    @contextmanager
    def _torch_threads(self, n: int | None):
        """PyTorch ops on n threads (None: as the process has them). Where both paths are in use they get the
        C step's threads: the server gives torch one thread beside the C step, for sampling."""
        before = torch.get_num_threads()
        if n is None or n == before:
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _time_paths(self, weights: str, kv: str) -> StepTimes:
        """Both forward paths timed on this engine's own pool before it serves (every slot is written before it
        is read, so what the timing leaves there is never seen), or read from the cache beside the kernel."""
        cfg, cdec = self.model.cfg, self.cdec
        at = min(CONTEXT, self.max_context - 1)
        max_prompt = min(PREFILL_TOKENS, self.max_context)

        def run(path: str, rows: int, prompt: int) -> float:
            t = time.perf_counter()
            if path == "c" and rows:
                cdec.step([0] * rows, [at] * rows, follow=[NO_FOLLOW] * rows)
            elif path == "c":
                cdec.step([0] * prompt, list(range(prompt)), [0] * prompt, [prompt - 1], follow=[NO_FOLLOW])
            elif rows:
                view = self.pool.decode_view([at] * rows)
                self.model.decode_step(torch.zeros(rows, dtype=torch.long), view.positions, view,
                                       max_position=view.L - 1, follow=torch.tensor([NO_FOLLOW] * rows))
            else:
                view = self.pool.prefill_view(0, 0, prompt)
                self.model(torch.zeros(1, prompt, dtype=torch.long), cache=view, positions=torch.arange(prompt),
                           last_only=True, follow=torch.tensor([[NO_FOLLOW]]))
            return time.perf_counter() - t

        key = cache_key(model=dataclasses.asdict(cfg), weights=weights, kv=kv, threads=cdec.threads,
                        max_batch=self.max_batch, max_prompt=max_prompt, torch=torch.__version__)
        path = cdec.kernel.path.with_name(f"{cdec.kernel.path.stem}-steps-{key}.json")
        with torch.inference_mode(), self._torch_threads(cdec.threads):
            return StepTimes.load_or_measure(path, run, self.max_batch, max_prompt)

    def _place(self, req: _Request) -> None:
        """A newly admitted request takes the next slot (running requests hold slots 0..B-1)."""
        req.slot = len(self._running)
        self._running.append(req)
        self._rows = None

    def _forward_c(self, admitted: list[_Request]) -> torch.Tensor:
        """The C step: every running request's next token and every admitted request's prompt (what the
        prefix cache does not hold) in one call -> logits (B, V) in slot order."""
        tokens = [r.out[-1] for r in self._running]
        positions = [r.length for r in self._running]
        follow = self._next_follow()
        slots = list(range(len(self._running)))
        out_rows = list(slots)
        starts = []
        for req in admitted:
            self._place(req)
            start = self._load_prefix(req)
            starts.append(start)
            n = len(req.prompt)
            tokens += req.prompt[start:]
            positions += range(start, n)
            slots += [req.slot] * (n - start)
            out_rows.append(len(tokens) - 1)
            if follow is not None:
                follow.append(req.prompt_follow())
        logits = self.cdec.step(tokens, positions, slots, out_rows, follow=follow)
        for r in self._running[:len(self._running) - len(admitted)]:
            r.length += 1
        for req, start in zip(admitted, starts, strict=True):
            self._prefilled(req, start)
        return logits

    def _decode(self) -> torch.Tensor:
        """One token for every running request -> logits (B, V)."""
        lengths, last = [r.length for r in self._running], [r.out[-1] for r in self._running]
        follow = self._next_follow()
        if self.graphs is not None:
            logits = self.graphs.step(last, lengths, follow)
        else:
            view = self.pool.decode_view(lengths)
            tokens = torch.tensor(last, device=self.device)
            logits = self.model.decode_step(tokens, view.positions, view, max_position=view.L - 1,
                                            follow=None if follow is None else torch.tensor(follow, device=self.device))
        for r in self._running:
            r.length += 1
        return logits

    def _next_follow(self) -> list[tuple[int, ...]] | None:
        """Each running request's follow ids for the token it feeds at this step; None without a copy head."""
        return [r.next_follow() for r in self._running] if self.model.cfg.copy_head else None

    def _prompt_follow(self, reqs: list[_Request]) -> torch.Tensor | None:
        """The follow ids of new prompts' last tokens, (len(reqs), 1, POINTERS); None without a copy head."""
        if not self.model.cfg.copy_head:
            return None
        return torch.tensor([[r.prompt_follow()] for r in reqs], device=self.device)

    def _load_prefix(self, req: _Request) -> int:
        """Copy the KV of the longest cached prefix of req's prompt into its slot -> its length (0: none)."""
        if self.prefix is None:  # the last prompt token is always computed: it gives the logits
            return 0
        return self.prefix.load(self.prefix.match(req.prompt, len(req.prompt) - 1), self.pool, req.slot)

    def _prefill(self, req: _Request) -> torch.Tensor:
        """Prompt of a newly admitted request -> logits (1, V) of its last token."""
        n = len(req.prompt)
        start = self._load_prefix(req)
        view = self.pool.prefill_view(req.slot, start, n - start)
        idx = torch.tensor([req.prompt[start:]], device=self.device)
        positions = torch.arange(start, n, device=self.device)
        logits = self.model(idx, cache=view, positions=positions, last_only=True,
                            follow=self._prompt_follow([req]))[:, -1]
        self._prefilled(req, start)
        return logits

    def _prefill_batch(self, reqs: list[_Request]) -> torch.Tensor:
        """The prompts of several newly admitted requests (in consecutive slots) in one forward pass ->
        logits (len(reqs), V): on a GPU one pass costs about what one prompt alone does."""
        starts = [self._load_prefix(r) for r in reqs]
        view = self.pool.batch_prefill_view(reqs[0].slot, [r.prompt for r in reqs], starts)
        follow = self._prompt_follow(reqs)
        logits = self.model(view.tokens, cache=view, positions=view.positions, last_only=True, follow=follow)[:, -1]
        for req, start in zip(reqs, starts, strict=True):
            self._prefilled(req, start)
        return logits

    def _prefilled(self, req: _Request, start: int) -> None:
        """Bookkeeping once req's prompt is in its slot: its length, the prefix cache, penalty counts."""
        n = len(req.prompt)
        req.length, req.cached = n, start
        if self.prefix is not None:
            self.prefix.store(req.prompt, self.pool, req.slot)
        if req.params.has_penalties:
            if self.counts is None:
                V = self.model.cfg.vocab_size
                self.counts = torch.zeros(self.max_batch, V, device=self.device)
                self.prompt_seen = torch.zeros(self.max_batch, V, dtype=torch.bool, device=self.device)
            self.counts[req.slot] = 0
            self.prompt_seen[req.slot] = False
            self.prompt_seen[req.slot, torch.tensor(req.prompt, device=self.device)] = True
        self._totals["prompt_tokens_total"] += n
        self._totals["prefix_hit_tokens_total"] += start

    def _emit(self, tokens: list[int], lps, rows: RowParams, events: dict) -> None:
        lp_lists = [x.tolist() for x in lps] if lps is not None else None
        lp_at = {row: j for j, row in enumerate(rows.logprob_list)}
        finished: list[tuple[_Request, str]] = []
        for i, (req, t) in enumerate(zip(self._running, tokens, strict=True)):
            req.out.append(t)
            p = req.params
            finish = None
            if t in self.stop_ids and not p.ignore_eos:
                text, ids, finish = req.text.finish(), [], "stop"
            else:
                text, stopped = req.text.push(t)
                ids = [t]
                if stopped:
                    finish = "stop"
                elif len(req.out) >= p.max_tokens:
                    text, finish = text + req.text.finish(), "length"
            logprobs = None
            if p.logprobs is not None:
                logprobs = [self._logprob(t, lp_lists, lp_at[i], p.logprobs)] if ids else []
            delta = Delta(text, ids, logprobs, finish, len(req.prompt), len(req.out), req.cached)
            events.setdefault(req.loop, []).append((req.queue, delta))
            if finish is not None:
                finished.append((req, finish))
        self._totals["generation_tokens_total"] += len(tokens)
        for req, finish in finished:
            self._release(req, finish, None)

    def _logprob(self, t: int, lp_lists: list, j: int, k: int) -> TokenLogprob:
        chosen, top_v, top_i = lp_lists
        shown = self.table.shown
        top = [(shown[i][0], v, shown[i][1]) for v, i in zip(top_v[j][:k], top_i[j][:k], strict=True)]
        return TokenLogprob(shown[t][0], chosen[j], shown[t][1], top)

    def _release(self, req: _Request, reason: str, events: dict | None) -> None:
        """The request is over: free its slot (the last running request moves in), count it, and send
        an "abort" Delta when it was aborted (the other endings were sent by _emit)."""
        if req.state == "done":
            return
        if req.state == "running":
            if reason in ("stop", "length") and self.prefix is not None:  # the next turn may extend it
                self.prefix.store(req.prompt + req.out[:req.length - len(req.prompt)], self.pool, req.slot)
            last = len(self._running) - 1
            if req.slot != last:
                moved = self._running[last]
                self.pool.move(last, req.slot, moved.length)
                if moved.params.has_penalties:
                    self.counts[req.slot] = self.counts[last]
                    self.prompt_seen[req.slot] = self.prompt_seen[last]
                moved.slot = req.slot
                self._running[req.slot] = moved
            self._running.pop()
            self._rows = None
        with self._cv:
            if req.state == "running":
                self._reserved -= req.reserved
            req.state = "done"
            self._active.pop(req.rid, None)
        key = "requests_aborted_total" if reason == "abort" else "requests_finished_total"
        self._totals[key] += 1
        if reason == "abort" and events is not None:
            delta = Delta("", [], None, "abort", len(req.prompt), len(req.out), req.cached)
            events.setdefault(req.loop, []).append((req.queue, delta))

    def _fail_running(self, admitted: list[_Request], err: EngineError, events: dict) -> None:
        """After a failed step the slots' contents are unknown: every running request ends with err."""
        failed = {id(r): r for r in [*self._running, *admitted]}.values()
        self._running.clear()
        self._rows = None
        with self._cv:
            for req in failed:
                if req.state == "running":
                    self._reserved -= req.reserved
                req.state = "done"
                self._active.pop(req.rid, None)
        for req in failed:
            events.setdefault(req.loop, []).append((req.queue, err))
            self._totals["requests_aborted_total"] += 1

    def _deliver(self, events: dict) -> None:
        for loop, items in events.items():
            try:
                loop.call_soon_threadsafe(_put_all, items)
            except RuntimeError:  # that event loop is closed: nobody reads these requests any more
                for q, _ in items:
                    for req in [r for r in self._running if r.queue is q]:
                        self._abort(req)


def _put_all(items: list) -> None:
    for queue, item in items:
        queue.put_nowait(item)
