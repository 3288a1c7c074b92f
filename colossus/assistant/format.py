"""What the model reads and writes when it uses a tool, defined here and nowhere else: the training chats
(colossus.world) and the loop (colossus.assistant.loop) share these functions.

A tool call is an assistant turn whose first token is <|tool_call|>, followed by a JSON object:

    <|assistant|><|tool_call|>{"name": "search", "arguments": {"query": "Pella Vorn"}}<|end|>
    <|tool_result|>[1] @ostra_news 2026-11-30: Pella Vorn joined Ostra Labs today.<|end|>
    <|assistant|>Pella Vorn works at Ostra Labs [1].<|end|>

(as messages: {"role": "tool_call", "content": call_json(...)}, then {"role": "tool", "content":
search_results(...)}, then the answer). A search's posts are the best the index ranks, shown oldest first
(in_time_order), so that the newest, what is true now, is the one nearest the answer; the posts of one
answer are numbered in the order the loop first showed them, across all its searches, and the answer cites
them inline as [n]. A tool result is data: it sits in its own role, and special strings in a post are plain
text (colossus.data.tokenizer).

A fact-check's answer recalls the fact first and gives its FEVER label last, "Verdict: SUPPORTS." (see
verdict), so that the label is decided after the fact is recalled, as a premise is checked."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

SEARCH, CALCULATOR, FACT_CHECK = "search", "calculator", "fact_check"
TOOLS = (SEARCH, CALCULATOR, FACT_CHECK)
SEARCH_ARGS = ("query", "from_date", "to_date", "authors")
LABELS = ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO")  # FEVER's
MARKER = re.compile(r"\[(\d{1,3})\]")  # an inline citation: [1]
WORD = re.compile(r"[^\W_]+")
SENTENCE_END = re.compile(r"(?<=\S)([.!?]+)(?=\s|$)")  # the stop that closes a sentence, before a space or the end
CLOSING_VERDICT = re.compile(rf"\s*\bVerdict:\s*({'|'.join(LABELS)})\s*\.?\s*$", re.IGNORECASE)
NOTHING, SOME = "No posts match {query}", "No post has every word of {query}"  # how a search's message opens


class ToolCallError(ValueError):
    """A tool call the loop cannot run: the message is what the model reads back as the tool's result."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict = field(default_factory=dict)
    closed: str = ""  # what parse_call added to close a call that stopped short (see closing)


def call_json(name: str, arguments: dict) -> str:
    """The content of a tool_call message. The built-in tools' text arguments open with a space: our tokenizer
    gives each word its leading space ("Pella" in prose is one token, " Pella"), and a word right after a quote
    has none ("Pella" becomes "P", "ella"), so without it a name copied from the question into a query would be
    other tokens than the question's, which no copying (colossus.model.copy_head) can follow; an author is
    written as the question writes it, " @pella". parse_call strips the spaces."""
    if name in TOOLS:
        arguments = {k: _pad(v) for k, v in arguments.items()}
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def _pad(value):
    """A text argument, or each text of a list (authors), with its leading space (see call_json)."""
    if isinstance(value, str):
        return " " + value
    return [_pad(v) for v in value] if isinstance(value, list) else value


def _strip(value):
    if isinstance(value, str):
        return value.strip()
    return [_strip(v) for v in value] if isinstance(value, list) else value


def closing(text: str) -> str | None:
    """What closes JSON that stopped short: the quote of an open string, then the brackets still open, innermost
    first ('{"name": "search", "arguments": {"query": " Kel' -> '"}}'); None when the text went wrong in another
    way (a closer that opens nothing, a key without a value), which no ending repairs."""
    stack, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not stack or stack.pop() != ch):
            return None
    end = ('"' if in_string else "") + "".join(reversed(stack))
    try:
        json.loads(text + end)
    except json.JSONDecodeError:
        return None
    return end


def parse_call(content: str) -> ToolCall:
    """The model's tool call -> ToolCall, or ToolCallError saying what is wrong with it. A call that stopped
    short (the turn ended inside its query) is closed and taken, and says what closed it."""
    end = ""
    try:
        obj = json.loads(content)
    except json.JSONDecodeError:
        text = content.rstrip()
        end = closing(text)
        if end is None:
            raise ToolCallError("error: the tool call is not JSON") from None
        obj = json.loads(text + end)
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise ToolCallError('error: a tool call is {"name": ..., "arguments": {...}}')
    args = obj.get("arguments", {})
    if not isinstance(args, dict):
        raise ToolCallError("error: arguments must be an object")
    if obj["name"] not in TOOLS:
        raise ToolCallError(f"error: no tool named {obj['name'][:40]!r}; the tools are {', '.join(TOOLS)}")
    return ToolCall(obj["name"], {k: _strip(v) for k, v in args.items()}, end)


def day(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d")


def post_line(n: int, author: str, created_at: dt.datetime, text: str) -> str:
    """One retrieved post as the model reads it, on one line: its author, its day, and its text with the post's
    marker closing every sentence,

        @ostra_news 2026-11-30: Pella Vorn has joined Ostra Labs [1]. Big week for them [1].

    so that an answer restating a sentence writes the citation that goes with it (the way sentence-level
    citation marks each evidence sentence with its id). A bracketed number in the text itself is written
    "(2)", so no post can pass for another."""
    text = MARKER.sub(r"(\1)", " ".join(text.split()))
    marked = SENTENCE_END.sub(lambda m: f" [{n}]{m.group(1)}", text)
    if not text or text[-1] not in ".!?":  # the last words have no stop of their own
        marked += f" [{n}]"
    return f"@{author} {day(created_at)}: {marked}"


def sentences(text: str) -> list[str]:
    """A text's sentences, each with its stop, split where post_line marks them."""
    out, start = [], 0
    for m in SENTENCE_END.finditer(text):
        out.append(text[start:m.end()].strip())
        start = m.end()
    rest = text[start:].strip()
    return out + ([rest] if rest else [])


def in_time_order(posts: list) -> list:
    """A search's posts as the model reads them: oldest first (ties by id), the newest nearest the answer."""
    return sorted(posts, key=lambda p: (p.created_at, p.id))


def words(text: str) -> list[str]:
    """A text's words as the index reads them (tantivy's default tokenizer): runs of letters and digits,
    lowercased."""
    return [w.lower() for w in WORD.findall(text)]


def holds_every_word(query: str, text: str) -> bool:
    return set(words(query)) <= set(words(text))


def search_results(posts: list, query: str, numbers: list[int] | None = None) -> str:
    """The content of a search's tool message: a line per post (anything with author, created_at and text),
    in the order given and numbered 1, 2, ... or by `numbers`; or that nothing matched. When no post holds
    every word of the query (the index then returns those holding some), a first line says so, as a search
    engine says it shows results for part of a query: the posts may be about something else."""
    if not posts:
        return NOTHING.format(query=query) + "."
    lines = [post_line(n, p.author, p.created_at, p.text)
             for n, p in zip(numbers or range(1, len(posts) + 1), posts, strict=True)]
    if not any(holds_every_word(query, p.text) for p in posts):
        lines.insert(0, SOME.format(query=query) + ". Posts with some:")
    return "\n".join(lines)



def not_found(subject: str, some: bool = False) -> str:
    """The answer when a search found nothing about the subject: it opens as the tool's message did (`some`: the
    search returned posts holding some of the words), so the subject is written after the same words as there
    and copied from there, not from a post that shares its first word ("Quirk Loshev", not "Quirk Tuladrix")."""
    return (SOME if some else NOTHING).format(query=subject) + ": I could not find anything about that name."


def factcheck_question(claim: str | None = None, post: str | None = None) -> str:
    """What a fact-check asks the model: a claim, or a post's text."""
    return f"Fact-check this post: {post}" if post is not None else f"Fact-check this: {claim}"


def verdict_line(explanation: str, label: str) -> str:
    """A fact-check's answer: the explanation, then its label, "X was born in Y, as the post says [1].
    Verdict: SUPPORTS." """
    return f"{explanation} Verdict: {label}."


def verdict(answer: str) -> tuple[str | None, str]:
    """A fact-check answer -> (its FEVER label, or None if it gives none; the explanation). The label closes
    the answer ("... Verdict: REFUTES.", verdict_line) or opens it ("REFUTES: ...")."""
    text = answer.strip()
    if m := CLOSING_VERDICT.search(text):
        return m.group(1).upper(), text[:m.start()].strip()
    for label in LABELS:
        if text.upper().startswith(label + ":"):
            return label, text[len(label) + 1:].strip()
    return None, text
