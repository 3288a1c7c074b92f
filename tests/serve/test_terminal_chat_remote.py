"""`colossus chat --url` on a live server with the model trained to use the tools: the server's searches and
citations reach the terminal as they do in this process (tests/assistant/test_terminal_chat_tools.py)."""

from __future__ import annotations

import io

import httpx
import tool_model as tm

from colossus.cli import main


def run_chat(args: list[str], lines: list[str], monkeypatch, capsys) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))  # then EOF: Ctrl-D
    assert main(["chat", *args, "--temperature", "0"]) == 0
    return capsys.readouterr().out


def test_the_remote_chat_prints_the_servers_searches_and_citations(live_server, tool_model_dir, monkeypatch,
                                                                     capsys):
    with live_server(model=tool_model_dir) as url:
        assert httpx.post(f"{url}/v1/posts", json=tm.POST.to_dict()).status_code == 200
        out = run_chat(["--url", url, "--search", "auto"], [tm.RECENT_Q], monkeypatch, capsys)
    assert "assistant> (searched 'Pella Vorn': 1 post)\nassistant> " + tm.RECENT_A + "\n" in out
    assert f"  [1] @{tm.POST.author}: {tm.POST.text} {url}/posts/{tm.POST.id}\n" in out
