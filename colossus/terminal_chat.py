"""The terminal chat: multi-turn, replies streamed as they are made, as the assistant (colossus.assistant.loop):
the model may search a feed of posts, and the posts it cites are printed as footnotes under the reply.

    colossus chat --model runs/latest                 the model runs in this process (--feed DIR to search)
    colossus chat --url http://127.0.0.1:8000         talk to a running `colossus serve` (--api-key K)

--search auto|on|off is xAI's search mode (auto: the model decides). Each search shows on a line of its own
before the answer: what was searched for and how many posts came back. A conversation longer than the model's
context loses its oldest turns (a question and its reply) from the prompt, with a note that says so; the web chat
follows the same rule (colossus/serve/static/context.js).

Commands: /clear (forget the conversation), /system TEXT (set the system prompt; /system alone
removes it), /temperature T, /help, /exit. Ctrl-C stops a reply, not the program; Ctrl-D leaves."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from colossus.assistant.loop import Assistant, ToolStep
from colossus.assistant.search import SearchParameters
from colossus.data import chat_template
from colossus.errors import ColossusError
from colossus.infer.engine import Delta, Engine
from colossus.infer.sampling import SamplingParams
from colossus.model import load_chat_model

HELP = ("/clear  forget the conversation    /system TEXT  set the system prompt (alone: remove it)\n"
        "/temperature T  sampling temperature (0 = greedy)    /exit  leave    Ctrl-C stops a reply")


@dataclass
class Searched:
    """A search the assistant ran for the reply being streamed: shown on a line of its own."""
    query: str
    results: int
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"(tool call failed: {self.error})"
        return f"(searched {self.query!r}: {self.results} post{'s' if self.results != 1 else ''})"


@dataclass
class Footnote:
    """A post the reply cites, by the number its [n] marker has in the reply."""
    number: int
    title: str
    url: str

    def line(self) -> str:
        return f"  [{self.number}] {self.title} {self.url}"


class Backend(Protocol):
    dropped_messages: int
    footnotes: list[Footnote]

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str | Searched]: ...


def oldest_turn(msgs: list[dict]) -> slice | None:
    """Where the oldest turn lies that a prompt too long may leave out: from the first message after the system
    prompt up to the next user message. None when that is the newest turn, which is always kept."""
    first = 1 if msgs and msgs[0]["role"] == "system" else 0
    end = next((i for i in range(first + 1, len(msgs)) if msgs[i]["role"] == "user"), None)
    return None if end is None else slice(first, end)


def searched(step: dict) -> Searched:
    """A tool step (ToolStep.to_dict, as the server streams it too) as the line the chat prints."""
    args = step.get("arguments") or {}
    what = args.get("query") or args.get("expression") or args.get("post_id") or args.get("claim") or ""
    if step.get("type") not in ("search", None):
        what = f"{step.get('type')}: {what}"
    return Searched(str(what), len(step.get("results") or []), step.get("error"))


class LocalBackend:
    """The assistant on a model directory in this process: the engine, and the feed to search (none: a search
    reads back that there is no feed)."""

    def __init__(self, model_path: str | Path, device: str = "cpu", feed=None, search: str = "auto"):
        self.model, self.tok = load_chat_model(model_path, device)
        self.device = device
        self.search = SearchParameters(mode=search)
        self.engine = Engine(self.model, self.tok, max_batch=1, max_queue=1, device=device)
        self.engine.start()
        self.assistant = Assistant(self.engine, self.tok, feed, permalink=lambda pid: f"/posts/{pid}")
        self.loop = asyncio.new_event_loop()
        self.dropped_messages = 0
        self.footnotes: list[Footnote] = []

    def fit(self, messages: list[dict], max_tokens: int) -> list[dict]:
        """The messages whose prompt leaves room for max_tokens, the oldest whole turns dropped (never the system
        prompt or the newest turn); self.dropped_messages counts the messages dropped."""
        budget = self.model.cfg.seq_len - max_tokens
        msgs = list(messages)
        self.dropped_messages = 0
        while True:
            ids = chat_template.render_prompt(self.tok, msgs)
            if len(ids) <= budget:
                return msgs
            turn = oldest_turn(msgs)
            if turn is None:
                raise ColossusError(f"the message is too long: {len(ids)} tokens, and the model's context is "
                                    f"{self.model.cfg.seq_len} with {max_tokens} kept for the reply")
            del msgs[turn]
            self.dropped_messages += turn.stop - turn.start

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str | Searched]:
        """The reply's text as it is made, and a Searched before the text of each search; its citations are in
        self.footnotes once it is over. Closing the iterator early (Ctrl-C) aborts the answer in the engine."""
        max_tokens = min(params.max_tokens, self.model.cfg.seq_len // 2)
        msgs = self.fit(messages, max_tokens)
        self.footnotes = []
        answer = self.assistant.answer(msgs, SamplingParams(params.temperature, params.top_k, params.top_p,
                                                            max_tokens, params.seed), self.search, "chat")
        events = answer.events()
        try:
            while True:
                try:
                    e = self.loop.run_until_complete(anext(events))
                except StopAsyncIteration:
                    break
                if isinstance(e, ToolStep):
                    yield searched(e.to_dict())
                elif isinstance(e, Delta) and e.text:
                    yield e.text
        finally:
            answer.close()
            self.loop.run_until_complete(events.aclose())
        self.footnotes = [Footnote(i, src.title, src.url)  # cited: in order of first use, as the [n] number them
                          for i, src in enumerate(answer.writer.cited, 1)]

    def close(self) -> None:
        self.engine.shutdown()
        self.loop.close()
        if self.assistant.feed is not None:
            self.assistant.feed.close()



CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context", "context_window")


class RemoteBackend:
    """Streams replies from a running server's POST /v1/chat/completions (SSE), so a terminal can talk to
    the model a `colossus serve` holds. Ctrl-C closes the connection, and the server aborts the request."""

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None, *,
                 timeout: float = 60.0, client: httpx.Client | None = None, search: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ColossusError(f"--url must look like http://127.0.0.1:8000, not {url!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.context: int | None = None  # the model's context length, when the server says it
        self.dropped_messages = 0
        self.search = search  # search_parameters.mode to send; None: the server's default
        self.footnotes: list[Footnote] = []
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
        if self.search is not None:
            body["search_parameters"] = {"mode": self.search}
        return body

    def fit(self, messages: list[dict], max_tokens: int) -> list[dict]:
        """As LocalBackend.fit, counting with the server's POST /tokenize: drops the oldest whole turns (never the
        system prompt or the newest turn) until the prompt leaves room for max_tokens. Unchanged when the
        context is unknown or the server has no /tokenize; a prompt that still does not fit is left to the
        server, whose 400 says so."""
        self.dropped_messages = 0
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
            turn = oldest_turn(msgs)
            if not isinstance(count, int) or count + max_tokens <= self.context or turn is None:
                return msgs
            del msgs[turn]
            self.dropped_messages += turn.stop - turn.start

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str | Searched]:
        self.footnotes = []
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
                    delta = choice.get("delta") or {}
                    for step in delta.get("tool_steps") or []:
                        yield searched(step)
                    self.add_footnotes(delta.get("annotations") or [])
                    if delta.get("content"):
                        yield delta["content"]

    def add_footnotes(self, annotations: list[dict]) -> None:
        """OpenAI's url_citation annotations as footnotes, one per post, numbered in order of first use."""
        for a in annotations:
            c = a.get("url_citation") if isinstance(a, dict) else None
            if isinstance(c, dict) and c.get("url") not in {f.url for f in self.footnotes}:
                self.footnotes.append(Footnote(len(self.footnotes) + 1, str(c.get("title", "")), str(c["url"])))

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
              input_fn: Callable[[str], str] = input, out=None) -> None:
    out = out or sys.stdout  # looked up per call, so that a redirected stdout (or pytest's capture) is honoured
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
                if isinstance(piece, Searched):
                    write(piece.line() + ("\nassistant> " if not reply else " "))
                    continue
                reply.append(piece)
                write(piece)
            write("\n")
            for note in getattr(backend, "footnotes", []):
                write(note.line() + "\n")
        except KeyboardInterrupt:
            write(" [stopped]\n")
        except ColossusError as e:
            messages.pop()
            write(f"\n(error: {e})\n")
            continue
        dropped = getattr(backend, "dropped_messages", 0)
        if dropped:
            write(f"(the oldest {dropped} message(s) no longer fit in the context and were left out)\n")
        messages.append({"role": "assistant", "content": "".join(reply)})
