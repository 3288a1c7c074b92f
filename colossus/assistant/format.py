"""What the model reads and writes when it uses a tool, defined here and nowhere else: the training chats
(colossus.world) and the loop (colossus.assistant.loop) share these functions.

A tool call is an assistant turn whose first token is <|tool_call|>, followed by a JSON object:

    <|assistant|><|tool_call|>{"name": "search", "arguments": {"query": "Pella Vorn"}}<|end|>
    <|tool_result|>[1] @ostra_news 2026-11-30: Pella Vorn joined Ostra Labs today.<|end|>
    <|assistant|>Pella Vorn works at Ostra Labs [1].<|end|>

(as messages: {"role": "tool_call", "content": call_json(...)}, then {"role": "tool", "content":
search_results(...)}, then the answer). The posts of one answer are numbered in the order the loop first
retrieved them, across all its searches; the answer cites them inline as [n]. A tool result is data: it
sits in its own role, and special strings in a post are plain text (colossus.data.tokenizer)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

SEARCH, CALCULATOR, FACT_CHECK = "search", "calculator", "fact_check"
TOOLS = (SEARCH, CALCULATOR, FACT_CHECK)
SEARCH_ARGS = ("query", "from_date", "to_date", "authors")
LABELS = ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO")  # FEVER's: a fact-check answer opens with one, then ":"
MARKER = re.compile(r"\[(\d{1,3})\]")  # an inline citation: [1]


class ToolCallError(ValueError):
    """A tool call the loop cannot run: the message is what the model reads back as the tool's result."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict = field(default_factory=dict)


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


def parse_call(content: str) -> ToolCall:
    """The model's tool call -> ToolCall, or ToolCallError saying what is wrong with it."""
    try:
        obj = json.loads(content)
    except json.JSONDecodeError:
        raise ToolCallError("error: the tool call is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise ToolCallError('error: a tool call is {"name": ..., "arguments": {...}}')
    args = obj.get("arguments", {})
    if not isinstance(args, dict):
        raise ToolCallError("error: arguments must be an object")
    if obj["name"] not in TOOLS:
        raise ToolCallError(f"error: no tool named {obj['name'][:40]!r}; the tools are {', '.join(TOOLS)}")
    return ToolCall(obj["name"], {k: _strip(v) for k, v in args.items()})


def day(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d")


def post_line(n: int, author: str, created_at: dt.datetime, text: str) -> str:
    """One retrieved post as the model reads it: its number, author, day and text on one line."""
    return f"[{n}] @{author} {day(created_at)}: {' '.join(text.split())}"


def search_results(lines: list[str], query: str) -> str:
    """The content of a search's tool message: its posts' lines, or that nothing matched."""
    return "\n".join(lines) if lines else f"No posts match {query}."


def not_found(subject: str) -> str:
    """The answer when a search found nothing about the subject."""
    return f"I could not find anything about {subject}."


def factcheck_question(claim: str | None = None, post: str | None = None) -> str:
    """What a fact-check asks the model: a claim, or a post's text."""
    return f"Fact-check this post: {post}" if post is not None else f"Fact-check this: {claim}"


def verdict(answer: str) -> tuple[str | None, str]:
    """A fact-check answer -> (its FEVER label, or None if it opens with none; the explanation after it)."""
    text = answer.strip()
    for label in LABELS:
        if text.upper().startswith(label + ":"):
            return label, text[len(label) + 1:].strip()
    return None, text
