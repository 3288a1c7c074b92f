"""The terminal chat as the assistant: `colossus chat --model DIR --feed DIR` (in this process) and `colossus chat
--url` (a live server: tests/serve/test_terminal_chat_remote.py) search with the model trained to use the tools
(tests/tool_model.py), show each search on a line of its own before the answer, and print the posts the answer
cites as footnotes; a conversation longer than the context loses its oldest turns with a note, and the chat goes
on."""

from __future__ import annotations

import io

import pytest
import tool_model as tm

from colossus.cli import main
from colossus.feed.feed import Feed
from colossus.terminal_chat import LocalBackend, RemoteBackend, chat_loop


@pytest.fixture
def feed_dir(tmp_path):
    feed = Feed(tmp_path / "feed")
    feed.ingest([tm.POST])
    feed.close()
    return tmp_path / "feed"


def run_chat(args: list[str], lines: list[str], monkeypatch, capsys) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))  # then EOF: Ctrl-D
    assert main(["chat", *args, "--temperature", "0"]) == 0
    return capsys.readouterr().out


def test_a_search_shows_then_the_cited_answer_then_its_footnote(tool_model_dir, feed_dir, monkeypatch, capsys):
    out = run_chat(["--model", str(tool_model_dir), "--feed", str(feed_dir)], [tm.RECENT_Q], monkeypatch, capsys)
    assert f"searching the feed at {feed_dir}" in out
    assert "assistant> (searched 'Pella Vorn': 1 post)\nassistant> " + tm.RECENT_A + "\n" in out
    assert f"  [1] @{tm.POST.author}: {tm.POST.text} /posts/{tm.POST.id}\n" in out
    assert out.count("[1] @") == 1


def test_a_plain_question_answers_with_no_search_line_and_no_footnote(tool_model_dir, feed_dir, monkeypatch,
                                                                      capsys):
    out = run_chat(["--model", str(tool_model_dir), "--feed", str(feed_dir)], [tm.PLAIN_Q], monkeypatch, capsys)
    assert "assistant> " + tm.PLAIN_A + "\n" in out and "(searched" not in out and "[1]" not in out


def test_nothing_found_is_said_with_no_footnote(tool_model_dir, feed_dir, monkeypatch, capsys):
    out = run_chat(["--model", str(tool_model_dir), "--feed", str(feed_dir)], [tm.UNKNOWN_Q], monkeypatch, capsys)
    assert "(searched 'Zorblat Quen': 0 posts)" in out and tm.UNKNOWN_A in out and "[1]" not in out


def test_search_off_never_searches(tool_model_dir, feed_dir, monkeypatch, capsys):
    out = run_chat(["--model", str(tool_model_dir), "--feed", str(feed_dir), "--search", "off"], [tm.RECENT_Q],
                   monkeypatch, capsys)
    assert "(searched" not in out and "[1] @" not in out


def test_a_missing_feed_is_one_clear_line(tool_model_dir, tmp_path, capsys):
    assert main(["chat", "--model", str(tool_model_dir), "--feed", str(tmp_path / "nope")]) != 0
    assert "no feed at" in capsys.readouterr().err


def test_a_conversation_longer_than_the_context_drops_its_oldest_turns_with_a_note(tool_model_dir, feed_dir):
    backend = LocalBackend(tool_model_dir, feed=Feed(feed_dir))
    out: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            out.append(s)

        def flush(self) -> None:
            pass

    asked = [tm.RECENT_Q] * 12
    lines = iter(asked + ["/exit"])
    replies: list[int] = []
    stream = backend.stream

    def counted(messages, params):  # each turn's reply, to its end
        yield from stream(messages, params)
        replies.append(backend.dropped_messages)

    backend.stream = counted
    try:
        chat_loop(backend, temperature=0, input_fn=lambda _prompt: next(lines), out=Out())
    finally:
        backend.close()
    text = "".join(out)
    # the tiny tool model is trained on single-turn chats, so only the first reply is pinned; the rest are
    # counted: every turn is answered to its end, none refused, however long the conversation grows
    assert text.startswith("assistant> (searched 'Pella Vorn': 1 post)\nassistant> " + tm.RECENT_A + "\n")
    assert len(replies) == len(asked) and "(error" not in text
    assert "no longer fit in the context and were left out" in text
    assert replies[0] == 0 and replies[-1] > 0  # the last turn's prompt had lost its oldest messages


def test_the_remote_backend_sends_the_search_mode():
    assert RemoteBackend("http://127.0.0.1:1", search="on").request_body([], tm_params())["search_parameters"] == \
        {"mode": "on"}
    assert "search_parameters" not in RemoteBackend("http://127.0.0.1:1").request_body([], tm_params())


def tm_params():
    from colossus.infer.sampling import SamplingParams

    return SamplingParams(temperature=0, max_tokens=8)
