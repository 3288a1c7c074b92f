"""Server-sent events: a stream's text chunks come from a template filled per token, which must give the
very bytes that rendering the whole chunk would."""

from __future__ import annotations

import json

import pytest

from colossus.serve.sse import EventTemplate, event


@pytest.mark.parametrize("text", ["", "plain", ' "quoted" \\ back', "line\nbreak\ttab", "é 中文 🙂", "\x00\x1f",
                                  EventTemplate.HOLE + "x"])
def test_a_filled_template_is_the_event_of_the_whole_object(text):
    def chunk(content: str) -> dict:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m \"q\"",
                "choices": [{"index": 0, "delta": {"content": content}, "logprobs": None, "finish_reason": None}],
                "usage": None}

    filled = EventTemplate(chunk(EventTemplate.HOLE)).fill(text)
    assert filled == event(chunk(text))
    assert filled.startswith("data: ") and filled.endswith("\n\n")
    assert json.loads(filled[6:])["choices"][0]["delta"]["content"] == text


def test_a_template_needs_exactly_one_hole():
    with pytest.raises(ValueError):
        EventTemplate({"a": "no hole"})
    with pytest.raises(ValueError):
        EventTemplate({"a": EventTemplate.HOLE, "b": EventTemplate.HOLE})
