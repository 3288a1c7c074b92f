"""The logic of POST /v1/chat/completions and POST /v1/completions: a validated request becomes one
engine request per choice (n > 1: seeds seed, seed+1, ...; the prefix cache makes the shared prompt
free), their streams are merged, and the result is written as the OpenAI API writes it: one JSON
response, or server-sent chunks ending in [DONE].

Nothing is truncated: a prompt that does not fit the context with max_tokens answers 400 naming both
lengths. A client that goes away (a closed stream, or a dropped connection while waiting for a full
response) cancels its engine requests, which frees their KV cache at once."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from colossus.assistant.client_tools import ClientTools, ToolCallingAnswer, tool_prompt
from colossus.assistant.loop import Answer, Assistant, ToolStep
from colossus.assistant.search import SearchParameters
from colossus.assistant.tool_parsers import ToolCallDelta, parser_for
from colossus.data.chat_template import render_prompt
from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.infer.engine import Delta, Engine, EngineError, EngineFull, PromptTooLong, TokenLogprob
from colossus.infer.sampling import SamplingParams
from colossus.serve.errors import APIError
from colossus.serve.metrics import Metrics
from colossus.serve.protocol import MAX_N, ChatCompletionRequest, CompletionRequest, SamplingFields
from colossus.serve.sse import DONE, EventTemplate, SSEResponse, event

log = logging.getLogger("colossus.serve")

DEFAULT_COMPLETION_TOKENS = 16  # /v1/completions' default max_tokens, as in the OpenAI API
MAX_CHOICES = 4 * MAX_N  # prompts x n in one /v1/completions request
SEED_RANGE = 2**63
END = object()  # a choice's stream ended


@dataclass
class ServedModel:
    """What the generation routes need once the model is loaded."""

    name: str
    tok: Tokenizer
    engine: Engine
    assistant: Assistant
    max_context: int
    fingerprint: str
    created: int


@dataclass
class Job:
    index: int  # choice index in the response
    prompt_index: int
    prompt_ids: list[int]
    params: SamplingParams
    request_id: str


@dataclass
class ChoiceResult:
    text: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    text_offset: int = 0  # characters streamed so far (completions' logprobs.text_offset)
    steps: list[ToolStep] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)  # the client's tools it calls, as message.tool_calls

    def add(self, d: Delta | ToolStep | ToolCallDelta) -> None:
        if isinstance(d, ToolStep):
            self.steps.append(d)
            return
        if isinstance(d, ToolCallDelta):
            if d.id is not None:
                self.calls.append({"id": d.id, "type": "function", "function": {"name": d.name, "arguments": ""}})
            self.calls[d.index]["function"]["arguments"] += d.arguments
            return
        self.text.append(d.text)
        self.logprobs += d.logprobs or []
        self.finish_reason = d.finish_reason or self.finish_reason
        self.prompt_tokens, self.completion_tokens = d.prompt_tokens, d.completion_tokens
        self.cached_tokens = d.cached_tokens


def engine_error(e: BaseException, prompt_param: str) -> APIError:
    if isinstance(e, APIError):
        return e
    if isinstance(e, PromptTooLong):
        return APIError(400, str(e), param=prompt_param, code="context_length_exceeded")
    if isinstance(e, EngineFull):
        return APIError(503, f"the server is busy: {e}; retry later", code="engine_full", headers={"Retry-After": "1"})
    if isinstance(e, EngineError):  # the engine failed or is shutting down: not the request's fault
        return APIError(503, f"{e}; retry later", code="engine_error")
    if isinstance(e, ColossusError):
        return APIError(400, str(e))
    log.error("generation failed: %s: %s", type(e).__name__, e)
    return APIError(500, "generation failed; the server log has the details")


class EngineStream:
    """One engine request as a choice's stream (POST /v1/completions: raw text, no assistant loop)."""

    def __init__(self, engine: Engine, job: Job):
        self.engine, self.job = engine, job

    def events(self) -> AsyncIterator[Delta]:
        return self.engine.generate(self.job.prompt_ids, self.job.params, request_id=self.job.request_id)

    def close(self) -> None:
        self.engine.abort(self.job.request_id)  # a no-op once it has finished


Stream = EngineStream | Answer | ToolCallingAnswer  # what a choice reads: events() and close()


class GenerationRun:
    """The choices of one HTTP request, merged into one stream of (choice index, Delta or ToolStep). One
    choice (the common case) is read straight from its stream; several are merged through a queue, each fed
    by a task of its own."""

    def __init__(self, streams: list[Stream], jobs: list[Job], metrics: Metrics, t0: float, prompt_param: str):
        self.streams, self.jobs, self.metrics, self.t0 = streams, jobs, metrics, t0
        self.prompt_param = prompt_param
        self.queue: asyncio.Queue = asyncio.Queue()
        self.open = {j.index for j in jobs}
        self.first_token = False
        self.buffered: deque = deque()
        self.single = None if len(jobs) > 1 else streams[0].events()
        self.tasks = [] if self.single else [asyncio.ensure_future(self._produce(j, st))
                                             for j, st in zip(jobs, streams, strict=True)]

    def _seen(self, item: Delta | ToolStep) -> None:
        if not self.first_token and isinstance(item, Delta) and item.finish_reason != "abort":
            self.first_token = True  # a token, or an end of turn
            self.metrics.observe_ttft(time.perf_counter() - self.t0)

    async def _produce(self, job: Job, stream: Stream) -> None:
        try:
            async for item in stream.events():
                self._seen(item)
                self.queue.put_nowait((job.index, item))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # handed to the reader, which answers with an error body
            self.queue.put_nowait((job.index, e))
            return
        self.queue.put_nowait((job.index, END))

    async def _next(self) -> tuple[int, Delta | ToolStep | BaseException | object]:
        if self.single is None:
            return await self.queue.get()
        try:
            item = await anext(self.single)
        except StopAsyncIteration:
            return self.jobs[0].index, END
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return self.jobs[0].index, e
        self._seen(item)
        return self.jobs[0].index, item

    async def start(self) -> None:
        """Wait for every choice's first event, so that a prompt too long or a full queue answers with its
        own status instead of a stream that fails."""
        seen: set[int] = set()
        try:
            while len(seen) < len(self.jobs):
                i, item = await self._next()
                if isinstance(item, BaseException):
                    raise engine_error(item, self.prompt_param)
                seen.add(i)
                self.buffered.append((i, item))
        except BaseException:
            self.close()
            raise

    async def events(self) -> AsyncIterator[tuple[int, Delta | ToolStep]]:
        while self.open:
            i, item = self.buffered.popleft() if self.buffered else await self._next()
            if item is END:
                self.open.discard(i)
                continue
            if isinstance(item, BaseException):
                raise engine_error(item, self.prompt_param)
            if isinstance(item, Delta) and item.finish_reason is not None:
                self.open.discard(i)
            yield i, item

    def close(self) -> None:
        """Stop what still runs: the engine aborts those requests and frees their KV. Idempotent, and
        awaits nothing, so it is safe in a cancelled task."""
        for st in self.streams:
            st.close()
        for t in self.tasks:
            if not t.done():
                t.cancel()


async def unless_disconnected(work, request: Request) -> bool:
    """Await work (a coroutine), unless the client closes its connection first: then work is cancelled
    and the answer is False. Errors of work are raised."""
    task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task not in done:
        return False
    task.result()
    return True


async def wait_disconnect(request: Request) -> None:
    """Returns when the client closes its connection (the body has been read, so receive() waits for that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class CompletionService:
    def __init__(self, served: ServedModel, metrics: Metrics):
        self.m, self.metrics = served, metrics

    # shared

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.m.name:
            raise APIError(404, f"the model `{name[:200]}` does not exist; this server serves `{self.m.name}`",
                           param="model", code="model_not_found")

    def prompt_ids(self, text: str) -> list[int]:
        """A raw-text prompt starts a document, as in pretraining: <|bos|> then the text."""
        return [self.m.tok.bos] + self.m.tok.encode(text)

    def chat_prompt(self, messages: list) -> list[int]:
        return render_prompt(self.m.tok, self.chat_messages(messages))

    def jobs(self, prompts: list[list[int]], req: SamplingFields, max_tokens: int | None, default_max: int | None,
             logprobs: int | None, rid: str, prompt_param: str) -> list[Job]:
        n, ctx = req.n or 1, self.m.max_context
        if len(prompts) * n > MAX_CHOICES:
            raise APIError(400, f"{len(prompts)} prompts x n={n} asks for more than {MAX_CHOICES} completions",
                           param="n")
        jobs = []
        for p, ids in enumerate(prompts):
            room = ctx - len(ids)
            want = max_tokens if max_tokens is not None else (room if default_max is None else min(default_max, room))
            where = f"prompt {p}" if len(prompts) > 1 else "the prompt"
            if room < 1:
                raise APIError(400, f"{where} has {len(ids)} tokens, but this model's context is {ctx} tokens "
                               f"(and the reply needs at least one); shorten the prompt",
                               param=prompt_param, code="context_length_exceeded")
            if len(ids) + want > ctx:
                raise APIError(400, f"{where} has {len(ids)} tokens and max_tokens asks for {want} more "
                               f"({len(ids) + want} in all), but this model's context is {ctx} tokens; "
                               f"shorten the prompt or lower max_tokens", param="max_tokens",
                               code="context_length_exceeded")
            for j in range(n):
                i = p * n + j
                seed = None if req.seed is None else (req.seed + j) % SEED_RANGE
                try:
                    params = SamplingParams(
                        temperature=1.0 if req.temperature is None else req.temperature,
                        top_k=max(req.top_k or 0, 0), top_p=1.0 if req.top_p is None else req.top_p,
                        max_tokens=want, seed=seed, min_p=req.min_p or 0.0,
                        presence_penalty=req.presence_penalty or 0.0, frequency_penalty=req.frequency_penalty or 0.0,
                        repetition_penalty=1.0 if req.repetition_penalty is None else req.repetition_penalty,
                        stop=req.stop_list(), logprobs=logprobs, ignore_eos=bool(req.ignore_eos))
                except ColossusError as e:
                    raise APIError(400, str(e)) from None
                jobs.append(Job(i, p, ids, params, f"{rid}-{i}"))
        return jobs

    def usage(self, jobs: list[Job], results: list[ChoiceResult], answers: list[Answer] | None = None) -> dict:
        firsts = {}
        for j in jobs:
            firsts.setdefault(j.prompt_index, results[j.index])
        prompt = sum(r.prompt_tokens for r in firsts.values())
        completion = sum(r.completion_tokens for r in results)
        out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
               "prompt_tokens_details": {"cached_tokens": sum(r.cached_tokens for r in firsts.values())}}
        if answers is not None:  # xAI's count of the sources a search put before the model
            out["num_sources_used"] = sum(a.num_sources_used for a in answers)
        return out

    async def run(self, streams: list[Stream], jobs: list[Job], request: Request, t0: float,
                  prompt_param: str) -> GenerationRun | None:
        """The started run, or None if the client went away while its requests waited in the queue."""
        run = GenerationRun(streams, jobs, self.metrics, t0, prompt_param)
        if not await unless_disconnected(run.start(), request):
            run.close()
            return None
        return run

    async def collect(self, run: GenerationRun, request: Request, n_choices: int) -> list[ChoiceResult] | None:
        """All choices to the end, or None if the client went away first (its requests are then aborted)."""
        results = [ChoiceResult() for _ in range(n_choices)]

        async def consume() -> None:
            async for i, d in run.events():
                results[i].add(d)

        try:
            finished = await unless_disconnected(consume(), request)
        finally:
            run.close()
        return results if finished else None

    def header(self, rid: str, obj: str, created: int) -> dict:
        return {"id": rid, "object": obj, "created": created, "model": self.m.name,
                "system_fingerprint": self.m.fingerprint}

    # POST /v1/chat/completions

    async def chat(self, req: ChatCompletionRequest, request: Request, t0: float) -> Response:
        self.check_model(req.model)
        messages = self.chat_messages(req.messages)
        search = req.search_parameters.parsed() if req.search_parameters is not None else SearchParameters()
        tools = self.client_tools(req, search)
        try:
            prompt, prefill = tool_prompt(self.m.tok, messages, tools) if tools else \
                (render_prompt(self.m.tok, messages), "")
        except ColossusError as e:
            raise APIError(400, str(e), param="messages") from None
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        k = (req.top_logprobs or 0) if req.logprobs else None
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        jobs = self.jobs([prompt], req, max_tokens, None, k, rid, "messages")
        base = str(request.base_url).rstrip("/")
        if tools:
            answers = [ToolCallingAnswer(self.m.assistant, prompt, prefill, j.params, tools, j.request_id)
                       for j in jobs]
        else:
            answers = [self.m.assistant.answer(messages, j.params, search, j.request_id,
                                               permalink=lambda pid: f"{base}/posts/{pid}") for j in jobs]
        run = await self.run(answers, jobs, request, t0, "messages")
        if run is None:
            return Response(status_code=499)
        head = self.header(rid, "chat.completion.chunk" if req.stream else "chat.completion", created)
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return SSEResponse(self.chat_chunks(run, jobs, answers, search, head, usage, k is not None),
                               on_close=run.close)
        results = await self.collect(run, request, len(jobs))
        if results is None:
            return Response(status_code=499)
        self.count_answers(answers, results)
        choices = [{"index": i, "message": self.message(r, answers[i]),
                    "logprobs": chat_logprobs(r.logprobs) if k is not None else None,
                    "finish_reason": r.finish_reason} for i, r in enumerate(results)]
        body = head | {"choices": choices}
        if search.return_citations:
            body["citations"] = citations_of(answers)
        return JSONResponse(body | {"usage": self.usage(jobs, results, answers)})

    def message(self, r: ChoiceResult, answer: Stream) -> dict:
        text = "".join(r.text)
        out = {"role": "assistant", "content": None if r.calls and not text else text, "refusal": None,
               "annotations": answer.annotations, "tool_steps": [st.to_dict() for st in r.steps]}
        return out | ({"tool_calls": r.calls} if r.calls else {})

    def client_tools(self, req: ChatCompletionRequest, search: SearchParameters) -> ClientTools | None:
        """The client's tools offered to the model, or None (none given, or tool_choice none); 400 when the model
        cannot be made to call one (required or named, and no parser knows its format)."""
        mode = req.tool_mode()
        if mode is None:
            return None
        if mode != "auto" and parser_for(self.m.tok) is None:
            raise APIError(400, f"tool_choice {mode!r}: this model's chat template has no tool-call format this "
                           f"server parses (Hermes' <tool_call>, or our own tool tokens), so it cannot be made to call "
                           f"a tool; use tool_choice auto or none", param="tool_choice")
        if search.mode == "on":
            raise APIError(400, 'search_parameters mode "on" runs the server\'s search; with the client\'s tools, '
                           "the calls are the client's: give one or the other", param="search_parameters.mode")
        return ClientTools([t.model_dump(exclude_none=True) for t in req.tools], mode,
                           parallel=req.parallel_tool_calls is not False)

    def chat_messages(self, messages: list) -> list[dict]:
        """The request's messages as the templates read them: developer is system; an assistant message's
        tool_calls with their arguments as objects where they are JSON objects (as templates expect them, and as
        vLLM hands them over); a tool message with its tool_call_id."""
        out = []
        for m in messages:
            d = {"role": "system" if m.role == "developer" else m.role}
            if m.content is not None or not m.tool_calls:
                d["content"] = m.text()
            if m.tool_calls:
                d["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                    "name": c.function.name, "arguments": json_object(c.function.arguments)}} for c in m.tool_calls]
            if m.tool_call_id is not None:
                d["tool_call_id"] = m.tool_call_id
            out.append(d)
        return out

    def count_answers(self, answers: list[Answer], results: list[ChoiceResult]) -> None:
        for a, r in zip(answers, results, strict=True):
            self.metrics.count_answer([st.name for st in r.steps if not st.forced], len(a.annotations),
                                      a.bad_citations, a.num_sources_used)

    def chat_chunks(self, run: GenerationRun, jobs: list[Job], answers: list[Answer], search: SearchParameters,
                    head: dict, include_usage: bool, logprobs: bool) -> AsyncIterator[str]:
        """The chunks of a streamed chat answer. Each tool call comes as a chunk of its own (delta.tool_steps,
        this server's extension); once a choice's text is over, one chunk carries its annotations (and the
        citations of the whole answer, top level, as xAI sends them), then the chunk with finish_reason."""
        extra = {"usage": None} if include_usage else {}
        texts: dict[int, EventTemplate] = {}  # by choice: its text chunk, made when the choice opens

        def chunk(i: int, delta: dict, lp=None, finish: str | None = None) -> dict:
            return head | {"choices": [{"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}]} | extra

        def chunks_of(i: int, d: Delta | ToolStep, r: ChoiceResult) -> list[str]:
            r.add(d)
            out = []
            if i not in texts:  # a choice opens with its role
                texts[i] = EventTemplate(chunk(i, {"content": EventTemplate.HOLE}))
                out.append(event(chunk(i, {"role": "assistant", "content": ""})))
            if isinstance(d, ToolStep):
                return out + [event(chunk(i, {"tool_steps": [d.to_dict()]}))]
            if isinstance(d, ToolCallDelta):
                return out + [event(chunk(i, {"tool_calls": [d.to_dict()]}))]
            if (d.text or d.logprobs) and logprobs:
                out.append(event(chunk(i, {"content": d.text}, chat_logprobs(d.logprobs or []))))
            elif d.text:
                out.append(texts[i].fill(d.text))
            if d.finish_reason is not None:
                cited = chunk(i, {"annotations": answers[i].annotations})
                if search.return_citations:
                    cited["citations"] = citations_of(answers)
                out.append(event(cited))
                out.append(event(chunk(i, {}, None, d.finish_reason)))
            return out

        def usage(results: list[ChoiceResult]) -> dict:
            self.count_answers(answers, results)
            return self.usage(jobs, results, answers)

        return self.stream(run, jobs, include_usage, chunks_of, usage, head)

    async def stream(self, run: GenerationRun, jobs: list[Job], include_usage: bool,
                     chunks_of: Callable[[int, Delta, ChoiceResult], list[str]],
                     usage: Callable[[list[ChoiceResult]], dict], head: dict) -> AsyncIterator[str]:
        """What both streamed routes send: each event's chunks (chunks_of also adds the event to its choice's
        result), the usage chunk when asked for, then [DONE]; an error mid-stream becomes an error event
        before [DONE]. However the stream ends, what still runs in the engine is cancelled."""
        results = [ChoiceResult() for _ in jobs]
        try:
            async for i, d in run.events():
                for c in chunks_of(i, d, results[i]):
                    yield c
            totals = usage(results)
            if include_usage:
                yield event(head | {"choices": [], "usage": totals})
            yield DONE
        except APIError as e:
            yield event(e.body())
            yield DONE
        finally:
            run.close()

    # POST /v1/completions

    async def complete(self, req: CompletionRequest, request: Request, t0: float) -> Response:
        self.check_model(req.model)
        prompts = self.completion_prompts(req.prompt)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        jobs = self.jobs(prompts, req, req.max_tokens, DEFAULT_COMPLETION_TOKENS, req.logprobs, rid, "prompt")
        run = await self.run([EngineStream(self.m.engine, j) for j in jobs], jobs, request, t0, "prompt")
        if run is None:
            return Response(status_code=499)
        head = self.header(rid, "text_completion", created)
        k = req.logprobs
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return SSEResponse(self.completion_chunks(run, jobs, head, usage, k), on_close=run.close)
        results = await self.collect(run, request, len(jobs))
        if results is None:
            return Response(status_code=499)
        choices = [{"index": i, "text": "".join(r.text),
                    "logprobs": completion_logprobs(r.logprobs, 0, k) if k is not None else None,
                    "finish_reason": r.finish_reason} for i, r in enumerate(results)]
        return JSONResponse(head | {"choices": choices, "usage": self.usage(jobs, results)})

    def completion_prompts(self, prompt: str | list) -> list[list[int]]:
        if isinstance(prompt, str):
            return [self.prompt_ids(prompt)]
        if all(isinstance(p, str) for p in prompt):
            return [self.prompt_ids(p) for p in prompt]
        prompts = [prompt] if all(isinstance(p, int) for p in prompt) else prompt
        vocab = self.m.tok.vocab_size
        for p, ids in enumerate(prompts):
            if not ids:
                raise APIError(400, f"prompt {p} is an empty list of token ids", param="prompt")
            bad = next((t for t in ids if not 0 <= t < vocab), None)
            if bad is not None:
                raise APIError(400, f"prompt: token id {bad} is outside the vocabulary (0..{vocab - 1})",
                               param="prompt")
        return [list(ids) for ids in prompts]

    def completion_chunks(self, run: GenerationRun, jobs: list[Job], head: dict, include_usage: bool,
                          k: int | None) -> AsyncIterator[str]:
        extra = {"usage": None} if include_usage else {}
        texts: dict[int, EventTemplate] = {}  # by choice: its chunk of text alone

        def chunks_of(i: int, d: Delta, r: ChoiceResult) -> list[str]:
            lp = completion_logprobs(d.logprobs or [], r.text_offset, k) if k is not None else None
            r.add(d)
            r.text_offset += sum(len(t.token) for t in d.logprobs or [])
            if not (d.text or d.logprobs or d.finish_reason is not None):
                return []
            if lp is None and d.finish_reason is None:
                if i not in texts:
                    hole = {"index": i, "text": EventTemplate.HOLE, "logprobs": None, "finish_reason": None}
                    texts[i] = EventTemplate(head | {"choices": [hole]} | extra)
                return [texts[i].fill(d.text)]
            choice = {"index": i, "text": d.text, "logprobs": lp, "finish_reason": d.finish_reason}
            return [event(head | {"choices": [choice]} | extra)]

        return self.stream(run, jobs, include_usage, chunks_of, lambda results: self.usage(jobs, results), head)

    # POST /tokenize

    def tokenize(self, prompt: str | None, messages: list | None) -> dict:
        ids = self.prompt_ids(prompt) if prompt is not None else self.chat_prompt(messages or [])
        return {"tokens": ids, "count": len(ids), "max_model_len": self.m.max_context}


def json_object(text: str) -> dict | str:
    """A call's arguments as an object when they are a JSON object, else the text as it is."""
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    return obj if isinstance(obj, dict) else text


def _finite(x: float) -> float:
    """JSON has no -Infinity: a token the sampler could never pick gets -9999.0, as vLLM writes it."""
    return x if math.isfinite(x) else -9999.0


def chat_logprobs(lps: list[TokenLogprob]) -> dict:
    return {"content": [{"token": t.token, "logprob": _finite(t.logprob), "bytes": t.bytes,
                         "top_logprobs": [{"token": s, "logprob": _finite(lp), "bytes": b} for s, lp, b in t.top]}
                        for t in lps],
            "refusal": None}


def top_by_text(t: TokenLogprob) -> dict[str, float]:
    """The top tokens by display string, most likely first: two ids that print alike keep the likelier's value."""
    top: dict[str, float] = {}
    for s, lp, _ in t.top:
        top.setdefault(s, _finite(lp))
    return top


def completion_logprobs(lps: list[TokenLogprob], offset: int, k: int) -> dict:
    offsets = []
    for t in lps:
        offsets.append(offset)
        offset += len(t.token)
    return {"tokens": [t.token for t in lps], "token_logprobs": [_finite(t.logprob) for t in lps],
            "top_logprobs": [top_by_text(t) for t in lps] if k > 0 else None,
            "text_offset": offsets}


def citations_of(answers: list[Answer]) -> list[str]:
    """xAI's top-level citations: the permalinks the answer cites, in order of first use (over its choices)."""
    return list(dict.fromkeys(url for a in answers for url in a.citations))
