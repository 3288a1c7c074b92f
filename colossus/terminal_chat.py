"""The terminal chat: multi-turn, replies streamed as they are made.

    colossus chat --model runs/latest                 the model runs in this process
    colossus chat --url http://127.0.0.1:8000         talk to a running `colossus serve` (--api-key K)

Commands: /clear (forget the conversation), /system TEXT (set the system prompt; /system alone
removes it), /temperature T, /help, /exit. Ctrl-C stops a reply, not the program; Ctrl-D leaves."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import torch

from colossus.data import chat_template
from colossus.data.tokenizer import StreamDecoder, Tokenizer
from colossus.errors import ColossusError
from colossus.infer.generate import stream
from colossus.infer.sampling import SamplingParams
from colossus.model.io import TOKENIZER, load_model, resolve_model_dir

HELP = ("/clear  forget the conversation    /system TEXT  set the system prompt (alone: remove it)\n"
        "/temperature T  sampling temperature (0 = greedy)    /exit  leave    Ctrl-C stops a reply")


class Backend(Protocol):
    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str]: ...


class LocalBackend:
    """Generates with a model directory in this process."""

    def __init__(self, model_path: str | Path, device: str = "cpu"):
        d = resolve_model_dir(model_path)
        self.tok = Tokenizer.load(d / TOKENIZER)
        self.model = load_model(d, device)
        self.device = device
        self.dropped_turns = 0

    def fit(self, messages: list[dict], max_tokens: int) -> list[int]:
        """The prompt for messages, dropping the oldest turns (never the system prompt or the last
        message) until it leaves room for max_tokens."""
        budget = self.model.cfg.seq_len - max_tokens
        msgs = list(messages)
        self.dropped_turns = 0
        while True:
            ids = chat_template.render_prompt(self.tok, msgs)
            if len(ids) <= budget:
                return ids
            first = 1 if msgs and msgs[0]["role"] == "system" else 0
            if len(msgs) - first <= 1:
                raise ColossusError(f"the message is too long: {len(ids)} tokens, and the model's context is "
                                    f"{self.model.cfg.seq_len} with {max_tokens} kept for the reply")
            del msgs[first]
            self.dropped_turns += 1

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str]:
        max_tokens = min(params.max_tokens, self.model.cfg.seq_len // 2)
        prompt = self.fit(messages, max_tokens)
        p = SamplingParams(params.temperature, params.top_k, params.top_p, max_tokens, params.seed)
        dec = StreamDecoder(self.tok)
        with torch.inference_mode():
            for tok_id, _ in stream(self.model, prompt, p, {self.tok.end, self.tok.bos}, self.device):
                piece = dec.push(tok_id)
                if piece:
                    yield piece
        tail = dec.flush()
        if tail:
            yield tail


CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context", "context_window")


class RemoteBackend:
    """Streams replies from a running server's POST /v1/chat/completions (SSE), so a terminal can talk to
    the model a `colossus serve` holds. Ctrl-C closes the connection, and the server aborts the request."""

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None, *,
                 timeout: float = 60.0, client: httpx.Client | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ColossusError(f"--url must look like http://127.0.0.1:8000, not {url!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.context: int | None = None  # the model's context length, when the server says it
        self.dropped_turns = 0
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def connect(self) -> str:
        """Checks the server answers (and accepts the key); picks its first model unless one was given.
        Returns the model's name."""
        with self._errors():
            r = self.client.get(f"{self.url}/v1/models", headers=self.headers)
            if r.status_code != 200:
                raise ColossusError(self._error_message(r))
            try:
                models = [m for m in r.json().get("data") or [] if isinstance(m, dict)]
            except (ValueError, AttributeError, TypeError):
                raise ColossusError(f"{self.url}/v1/models did not answer a model list; is this a colossus "
                                    "server?") from None
        entry = next((m for m in models if m.get("id") == self.model), models[0] if models else None)
        if entry is None:
            raise ColossusError(f"the server at {self.url} serves no model")
        if self.model is None:
            self.model = entry.get("id")
        ctx = next((entry[k] for k in CONTEXT_FIELDS if isinstance(entry.get(k), int)), None)
        self.context = ctx if ctx and ctx > 1 else None
        return str(self.model)

    def request_body(self, messages: list[dict], params: SamplingParams) -> dict:
        max_tokens = params.max_tokens
        if self.context:  # as LocalBackend: at most half the context for the reply
            max_tokens = max(1, min(max_tokens, self.context // 2))
        body: dict = {"messages": messages, "stream": True, "temperature": params.temperature,
                      "max_tokens": max_tokens}
        if self.model:
            body["model"] = self.model
        if params.top_k:
            body["top_k"] = params.top_k
        if params.top_p < 1:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def fit(self, messages: list[dict], max_tokens: int) -> list[dict]:
        """As LocalBackend.fit, counting with the server's POST /tokenize: drops the oldest turns (never the
        system prompt or the last message) until the prompt leaves room for max_tokens. Unchanged when the
        context is unknown or the server has no /tokenize; a prompt that still does not fit is left to the
        server, whose 400 says so."""
        self.dropped_turns = 0
        if not self.context:
            return messages
        msgs = list(messages)
        while True:
            with self._errors():
                r = self.client.post(f"{self.url}/tokenize", json={"messages": msgs, "model": self.model},
                                     headers=self.headers)
            if r.status_code != 200:
                return msgs
            count = r.json().get("count")
            first = 1 if msgs and msgs[0]["role"] == "system" else 0
            if not isinstance(count, int) or count + max_tokens <= self.context or len(msgs) - first <= 1:
                return msgs
            del msgs[first]
            self.dropped_turns += 1

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str]:
        body = self.request_body(messages, params)
        body["messages"] = self.fit(messages, body["max_tokens"])
        with self._errors(), self.client.stream("POST", f"{self.url}/v1/chat/completions", json=body,
                                                headers=self.headers) as r:
            if r.status_code != 200:
                r.read()
                raise ColossusError(self._error_message(r))
            for data in sse_data(r.iter_lines()):
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise ColossusError(f"the server sent an event that is not JSON: {data[:80]!r}") from None
                if isinstance(chunk, dict) and chunk.get("error"):
                    err = chunk["error"]
                    raise ColossusError("the server stopped the reply: "
                                        + str(err.get("message", err) if isinstance(err, dict) else err))
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece

    def close(self) -> None:
        self.client.close()

    def _error_message(self, r: httpx.Response) -> str:
        """One line from an error answer: the OpenAI-style message when there is one."""
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text.strip().splitlines()[0][:200] if r.text.strip() else r.reason_phrase
        if r.status_code == 401:
            message += " (pass --api-key)"
        return f"the server answered {r.status_code}: {message}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turns httpx's transport errors into one-line ColossusErrors."""
        try:
            yield
        except httpx.ConnectError:
            raise ColossusError(f"cannot reach the server at {self.url}; is `colossus serve` running?") from None
        except httpx.TimeoutException:
            raise ColossusError(f"the server at {self.url} did not answer in time") from None
        except httpx.HTTPError as e:
            raise ColossusError(f"the connection to {self.url} failed: {e or type(e).__name__}") from None


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event (its data: lines joined by newlines); comments and other
    fields are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def chat_loop(backend: Backend, system: str | None = None, temperature: float = 0.7,
              input_fn: Callable[[str], str] = input, out=sys.stdout) -> None:
    messages: list[dict] = []
    params = SamplingParams(temperature=temperature, max_tokens=256)

    def write(s: str) -> None:
        out.write(s)
        out.flush()

    while True:
        try:
            line = input_fn("you> ")
        except EOFError:
            write("\n")
            return
        except KeyboardInterrupt:
            write("\n(/exit to leave)\n")
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd, _, arg = text.partition(" ")
            if cmd in ("/exit", "/quit"):
                return
            if cmd == "/clear":
                messages.clear()
                write("(conversation cleared)\n")
            elif cmd == "/system":
                system = arg.strip() or None
                write(f"(system prompt: {system!r})\n" if system else "(system prompt removed)\n")
            elif cmd == "/temperature":
                try:
                    params = SamplingParams(temperature=float(arg), max_tokens=params.max_tokens)
                    write(f"(temperature {params.temperature})\n")
                except (ValueError, ColossusError):
                    write("(usage: /temperature T, with T a number >= 0)\n")
            elif cmd == "/help":
                write(HELP + "\n")
            else:
                write(f"(unknown command {cmd}; /help lists them)\n")
            continue
        messages.append({"role": "user", "content": text})
        convo = ([{"role": "system", "content": system}] if system else []) + messages
        reply: list[str] = []
        write("assistant> ")
        try:
            for piece in backend.stream(convo, params):
                reply.append(piece)
                write(piece)
            write("\n")
        except KeyboardInterrupt:
            write(" [stopped]\n")
        except ColossusError as e:
            messages.pop()
            write(f"\n(error: {e})\n")
            continue
        dropped = getattr(backend, "dropped_turns", 0)
        if dropped:
            write(f"(the oldest {dropped} message(s) no longer fit in the context and were left out)\n")
        messages.append({"role": "assistant", "content": "".join(reply)})
