"""Parsers of the tool calls a model writes, one per format, in a registry apart from the serving code (as
vLLM keeps its tool parsers).

    parser = make_parser(tok)                 # None: the model's template names no format we parse
    for piece in stream: events += parser.feed(piece)        # str (content) or ToolCallDelta
    events += parser.finish()
    parser.content, parser.calls                             # the whole answer, once finished

Formats (the text as the model's template spells it):
- hermes: `<tool_call>\\n{"name": "get_weather", "arguments": {"city": "Paris"}}\\n</tool_call>`, anywhere in
  the reply and as many as the model writes (Qwen2.5, Qwen3, SmolLM2's tool templates, NousResearch Hermes);
- colossus: our own tool token, which opens an assistant turn (colossus.assistant.format):
  `<|tool_call|>{"name": ..., "arguments": {...}}` up to the end of the turn, one call a turn.

Incrementally, a parser holds back text that may be the start of a call (a prefix of `<tool_call>`), so no
marker ever reaches the client as content; once a call's name and `"arguments":` have come it emits the call's
header (index, id, name), then the arguments as fragments while they arrive, holding back only what may be the
object's closing brace or the start of `</tool_call>`. The fragments of a call put together are its final
arguments: the text the model wrote after `"arguments":`, so JSON the model got wrong comes back as written
(OpenAI documents that arguments may not be valid JSON). Feeding a text at once or one character at a time
gives the same calls and the same content."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

# a call's body up to its arguments' value: {"name": "...", "arguments":
HEADER = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')
TAIL = re.compile(r"\s*(\}\s*)?\Z")  # what may still turn out to be the call object's closing brace


@dataclass
class ToolCallDelta:
    """One streamed piece of a call, as OpenAI's delta.tool_calls[i] carries it: the first of each call has its id
    and name (arguments ""), the next ones only index and a fragment of arguments."""

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict:
        if self.id is None:
            return {"index": self.index, "function": {"arguments": self.arguments}}
        return {"index": self.index, "id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # the JSON text the model wrote, valid or not

    def to_dict(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of text that is the start of marker (not all of it)."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


class ToolParser:
    """A format whose calls are a JSON object {"name": ..., "arguments": ...} after an opening marker, up to a
    closing marker (or to the end of the turn when close is None). `anywhere`: calls may follow text; otherwise
    only the reply's very start can open one. max_calls: the calls kept (parallel_tool_calls false: 1); the
    text after the last one kept is dropped."""

    name = ""
    open = ""
    close: str | None = None
    anywhere = True

    def __init__(self, max_calls: int | None = None, new_id: Callable[[], str] = new_call_id):
        self.max_calls, self.new_id = max_calls, new_id
        self.state = "text"  # text | call | plain (no call can come any more) | done (max_calls reached)
        self.buf = ""  # text not decided yet (a possible start of open)
        self.body = ""  # the current call's text after open
        self.args_at: int | None = None  # where its arguments start in body, once its header is out
        self.sent = 0  # characters of its arguments already emitted
        self.current: ToolCall | None = None
        self.calls: list[ToolCall] = []
        self.text: list[str] = []  # content emitted
        self.pending_ws = ""  # content's trailing whitespace, held until more content follows
        self.started = False  # content has begun (its leading whitespace is dropped)

    @classmethod
    def prefix(cls, name: str | None) -> str:
        """What the server writes for the model to force a call (tool_choice required: any function; named: that
        one); the model writes on from there, and the parser reads the prefix as if the model had written it."""
        return cls.open if name is None else cls.open + '{"name": ' + json.dumps(name, ensure_ascii=False) + \
            ', "arguments":'

    @property
    def content(self) -> str | None:
        """The text outside the calls, without its outer whitespace; None when there was none and a call came
        (as OpenAI's message.content)."""
        text = "".join(self.text)
        return None if not text and self.calls else text

    def feed(self, text: str) -> list[str | ToolCallDelta]:
        out: list[str | ToolCallDelta] = []
        if self.state == "done":
            return out
        if self.state == "plain":
            self._content(text, out)
            return out
        self.buf += text
        while self.buf or self.state == "call":
            if self.state == "call":
                if not self._call_text(out):
                    break
                continue
            if self.state != "text":
                break
            at = self.buf.find(self.open)
            if at >= 0 and (self.anywhere or at == 0 and not self.text):
                self._content(self.buf[:at], out)
                self.buf = self.buf[at + len(self.open):]
                self.state, self.body, self.args_at, self.sent = "call", "", None, 0
                continue
            if not self.anywhere and not self.open.startswith(self.buf[:len(self.open)]):
                self.state = "plain"  # the reply did not open with a call: it is all text
                self._content(self.buf, out)
                self.buf = ""
                break
            keep = partial_suffix(self.buf, self.open)
            self._content(self.buf[:len(self.buf) - keep], out)
            self.buf = self.buf[len(self.buf) - keep:]
            break
        return out

    def finish(self) -> list[str | ToolCallDelta]:
        """The reply ended (its end of turn, a stop string or max_tokens): what was held back, and a call left open
        (a call cut by max_tokens comes back with the arguments written so far)."""
        out: list[str | ToolCallDelta] = []
        if self.state == "call":
            if self.close:  # a call cut short may end in part of its closing marker
                self.body = self.body[:len(self.body) - partial_suffix(self.body, self.close)]
            self._end_call(out, closed=False)
        elif self.state in ("text", "plain"):
            self._content(self.buf, out)
        self.buf, self.pending_ws = "", ""
        self.state = "done"
        return out

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """A whole reply -> (content, calls)."""
        self.feed(text)
        self.finish()
        return self.content, self.calls

    # inside a call

    def _call_text(self, out: list) -> bool:
        """Take buf into the call's body; True when the call closed (the rest of buf is text again)."""
        self.body += self.buf
        self.buf = ""
        end = self.body.find(self.close) if self.close else -1
        if end < 0:
            self._stream(out, hold=partial_suffix(self.body, self.close) if self.close else 0)
            return False
        self.buf = self.body[end + len(self.close):]
        self.body = self.body[:end]
        self._end_call(out, closed=True)
        return True

    def _header(self, out: list) -> bool:
        if self.args_at is None:
            m = HEADER.match(self.body)
            if not m:
                return False
            try:
                name = json.loads(f'"{m.group(1)}"')
            except json.JSONDecodeError:
                name = m.group(1)
            self.args_at = m.end()
            self.current = ToolCall(self.new_id(), name, "")
            out.append(ToolCallDelta(len(self.calls), "", self.current.id, name))
        return True

    def _stream(self, out: list, hold: int) -> None:
        """Emit the arguments written so far, but for what may be the object's closing brace (or hold characters
        that may start the closing marker)."""
        if not self._header(out):
            return
        args = self._args(len(self.body) - hold)
        self._emit_args(args[:TAIL.search(args).start()], out)

    def _args(self, end: int) -> str:
        """The arguments' text in body up to end; their leading whitespace is no part of them."""
        if not self.sent:
            skip = self.body[self.args_at:end]
            self.args_at += len(skip) - len(skip.lstrip())
        return self.body[self.args_at:end]

    def _emit_args(self, args: str, out: list) -> None:
        if len(args) > self.sent:
            out.append(ToolCallDelta(len(self.calls), args[self.sent:]))
            self.current.arguments += args[self.sent:]
            self.sent = len(args)

    def _end_call(self, out: list, closed: bool) -> None:
        body = self.body.strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            obj = None
        whole = isinstance(obj, dict) and isinstance(obj.get("name"), str)
        if self._header(out):
            args = self._args(len(self.body)).rstrip()
            if args.endswith("}") and (whole or args.count("}") > args.count("{")):
                args = args[:-1].rstrip()  # the call object's own closing brace
            if whole and _loads(args) != obj.get("arguments"):  # another key after the arguments
                args = args if self.sent else _dumps(obj.get("arguments", {}))
            self._emit_args(args, out)
        elif whole:
            self.current = ToolCall(self.new_id(), obj["name"], _dumps(obj.get("arguments", {})))
            out.append(ToolCallDelta(len(self.calls), "", self.current.id, self.current.name))
            out.append(ToolCallDelta(len(self.calls), self.current.arguments))
        else:  # no call in there: it was text after all
            self.state = "text"
            self.state = "text" if self.anywhere else "plain"
            self._content(self.open + self.body + (self.close if closed and self.close else ""), out)
            return
        self.calls.append(self.current)
        self.current = None
        self.state = "done" if self.max_calls is not None and len(self.calls) >= self.max_calls else "text"
        if self.state == "done":
            self.buf = ""

    # content

    def _content(self, text: str, out: list) -> None:
        if not self.started:
            text = text.lstrip()
            self.started = bool(text)
        text = self.pending_ws + text
        kept = text.rstrip()
        self.pending_ws = text[len(kept):]
        if kept:
            out.append(kept)
            self.text.append(kept)


def _loads(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return _INVALID


_INVALID = object()


def _dumps(arguments) -> str:
    """Arguments that came as a JSON value other than where the header reads them: a string stays as written."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


class HermesParser(ToolParser):
    name, open, close, anywhere = "hermes", "<tool_call>", "</tool_call>", True

    @classmethod
    def prefix(cls, name: str | None) -> str:
        return cls.open + "\n" + ("" if name is None else super().prefix(name)[len(cls.open):])


class ColossusParser(ToolParser):
    """Our tool token: the loop (colossus.assistant.client_tools) feeds the turn's opening <|tool_call|> token as
    its text, which decoding otherwise drops as a special token."""

    name, open, close, anywhere = "colossus", "<|tool_call|>", None, False


TOOL_PARSERS: dict[str, type[ToolParser]] = {p.name: p for p in (HermesParser, ColossusParser)}


def parser_for(tok) -> type[ToolParser] | None:
    """The format of the model's calls, from its template: ours for our tokenizer; hermes when the model's own
    template mentions <tool_call>; None otherwise (the model has no call format we know)."""
    if getattr(tok, "render_prompt", None) is None:
        return ColossusParser if "<|tool_call|>" in tok.special else None
    return HermesParser if HermesParser.open in getattr(tok, "template_source", "") else None
