"""The tool-call parsers (colossus.assistant.tool_parsers): whole replies, and the same replies fed one character at
a time, which must give the same content and calls, a header before any argument, and no marker as content."""

from __future__ import annotations

import pytest

from colossus.assistant.tool_parsers import ColossusParser, HermesParser, ToolCallDelta, parser_for

WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris", "when": {"day": 1}}}'
CASES = [  # (parser, reply, content, [(name, arguments)])
    (HermesParser, f"<tool_call>\n{WEATHER}\n</tool_call>", None,
     [("get_weather", '{"city": "Paris", "when": {"day": 1}}')]),
    (HermesParser, f"Let me look.\n<tool_call>\n{WEATHER}\n</tool_call>\n", "Let me look.",
     [("get_weather", '{"city": "Paris", "when": {"day": 1}}')]),
    (HermesParser, '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n<tool_call>\n'
     '{"name": "b", "arguments": {"x": [1, 2]}}\n</tool_call>', None, [("a", "{}"), ("b", '{"x": [1, 2]}')]),
    (HermesParser, '<tool_call>\n{"name": "a", "arguments": {"x": 1,}}\n</tool_call>', None, [("a", '{"x": 1,}')]),
    (HermesParser, '<tool_call>{"arguments": {"x": 1}, "name": "a"}</tool_call>', None, [("a", '{"x": 1}')]),
    (HermesParser, '<tool_call>\n{"name": "a", "arguments": {"q": "cut sh', None, [("a", '{"q": "cut sh')]),
    (HermesParser, "No call: 1 < 2 and <tool> is a tag, <tool_call>junk</tool_call>.",
     "No call: 1 < 2 and <tool> is a tag, <tool_call>junk</tool_call>.", []),
    (HermesParser, "Plain text ending in <tool_c", "Plain text ending in <tool_c", []),
    (ColossusParser, '<|tool_call|> {"name": "search", "arguments": {"query": "Pella Vorn"}}', None,
     [("search", '{"query": "Pella Vorn"}')]),
    (ColossusParser, '<|tool_call|>{"name": "f", "arguments": {"a": "}"}}', None, [("f", '{"a": "}"}')]),
    (ColossusParser, "Hello. <|tool_call|> is only a call at the start.",
     "Hello. <|tool_call|> is only a call at the start.", []),
]


def feed(parser, text: str, step: int) -> list:
    events = []
    for i in range(0, len(text), step):
        events += parser.feed(text[i:i + step])
    return events + parser.finish()


@pytest.mark.parametrize("kind, reply, content, calls", CASES)
def test_whole_replies_and_one_character_at_a_time_agree(kind, reply, content, calls):
    whole = kind(new_id=lambda: "id")
    assert whole.parse(reply) == (content, whole.calls)
    assert [(c.name, c.arguments) for c in whole.calls] == calls
    for step in (1, 2, 3, 7):
        p = kind(new_id=lambda: "id")
        events = feed(p, reply, step)
        assert p.content == content and [(c.name, c.arguments) for c in p.calls] == calls
        assert "".join(e for e in events if isinstance(e, str)) == (content or "")
        for n, (name, args) in enumerate(calls):
            mine = [e for e in events if isinstance(e, ToolCallDelta) and e.index == n]
            assert (mine[0].id, mine[0].name, mine[0].arguments) == ("id", name, "")  # the header first
            assert all(e.id is None and e.name is None for e in mine[1:])  # then only fragments
            assert "".join(e.arguments for e in mine) == args


def test_arguments_stream_as_they_arrive_and_markers_never_leak():
    p = HermesParser()
    events = []
    prefix = 'Sure.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par'
    for ch in prefix:
        events += p.feed(ch)
    assert [e for e in events if isinstance(e, str)] == list("Sure.")
    header, *fragments = [e for e in events if isinstance(e, ToolCallDelta)]
    assert header.name == "get_weather" and header.id.startswith("call_")
    assert "".join(f.arguments for f in fragments) == '{"city": "Par'  # before the call is over
    assert p.feed('is"}') == [ToolCallDelta(0, 'is"')]  # "}" may close the call: held back
    assert p.feed("}\n</tool_") == [ToolCallDelta(0, "}")]  # the next one does, so the first was the arguments'
    assert p.feed("call>") == []
    assert p.calls[0].arguments == '{"city": "Paris"}'


def test_parallel_false_keeps_the_first_call_and_drops_the_rest():
    p = HermesParser(max_calls=1)
    content, calls = p.parse('<tool_call>{"name": "a", "arguments": {}}</tool_call> then '
                             '<tool_call>{"name": "b", "arguments": {}}</tool_call>')
    assert content is None and [c.name for c in calls] == ["a"]


def test_forced_prefixes_are_read_as_the_start_of_the_reply():
    p = HermesParser(new_id=lambda: "id")
    assert HermesParser.prefix("get_time") == '<tool_call>\n{"name": "get_time", "arguments":'
    assert p.feed(HermesParser.prefix("get_time")) == [ToolCallDelta(0, "", "id", "get_time")]
    p.feed(' {"city": "Lima"}}\n</tool_call>')
    assert [c.to_dict() for c in p.calls] == [
        {"id": "id", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Lima"}'}}]
    assert HermesParser.prefix(None) == "<tool_call>\n" and ColossusParser.prefix(None) == "<|tool_call|>"


def test_the_format_is_picked_from_the_template(tok):
    class Template:
        special: dict = {}

        def __init__(self, source):
            self.template_source = source

        def render_prompt(self, messages):
            return []

    assert parser_for(tok) is ColossusParser
    assert parser_for(Template("...<tool_call>\n{{ tool_call.name }}...")) is HermesParser
    assert parser_for(Template("{% for m in messages %}{{ m.content }}{% endfor %}")) is None
