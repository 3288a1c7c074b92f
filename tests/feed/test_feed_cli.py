"""`colossus feed add | search | show` through the CLI (show with the post's notes), and its errors."""

from __future__ import annotations

import json

from colossus.cli import main
from colossus.feed.feed import Feed

POSTS = [{"id": "1", "author": "@pella", "created_at": "2026-11-30T09:00:00Z", "text": "Pella Vorn joined Ostra Labs."},
         {"id": "2", "author": "news", "created_at": "2026-12-01", "text": "Ostra Labs hires again.", "reply_to": "1"}]


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_add_search_and_show(tmp_path, capsys):
    feed = ["--feed", str(tmp_path / "feed")]
    f = write(tmp_path / "posts.jsonl", POSTS)
    assert main(["feed", "add", f, *feed]) == 0
    assert "2 post(s) added, 0 already in the feed" in capsys.readouterr().out
    assert main(["feed", "add", f, *feed]) == 0
    assert "0 post(s) added, 2 already in the feed" in capsys.readouterr().out
    assert main(["feed", "search", "ostra labs", "--since", "2026-12-01", "--json", *feed]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["2"] and rows[0]["score"] > 0
    assert main(["feed", "search", "ostra", "--author", "@pella", *feed]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1  @pella  2026-11-30T09:00:00Z") and "Pella Vorn joined" in out
    assert main(["feed", "search", "zebra", *feed]) == 0 and "no post matches" in capsys.readouterr().out
    assert main(["feed", "show", "2", *feed]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["post"]["id"] == "2" and [p["id"] for p in shown["thread"]] == ["1", "2"] and shown["notes"] == []
    f = Feed(tmp_path / "feed")
    note = f.add_note("2", "MISINFORMED_OR_POTENTIALLY_MISLEADING", "Ostra Labs froze hiring.", ["/posts/1"])
    f.close()
    assert main(["feed", "show", "2", *feed]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["notes"] == [note.to_dict()] and shown["thread"][1]["notes"] == [note.to_dict()]
    assert shown["thread"][0]["notes"] == []


def test_bad_input_is_an_error_that_says_what_to_fix(tmp_path, capsys):
    feed = ["--feed", str(tmp_path / "feed")]
    bad = write(tmp_path / "bad.jsonl", [POSTS[0], {"id": "3", "author": "x", "text": "no time"}])
    assert main(["feed", "add", bad, *feed]) == 2
    assert "bad.jsonl:2: a post needs created_at" in capsys.readouterr().err
    (tmp_path / "junk.jsonl").write_text("{not json\n")
    assert main(["feed", "add", str(tmp_path / "junk.jsonl"), *feed]) == 2
    assert "junk.jsonl:1: not JSON" in capsys.readouterr().err
    assert main(["feed", "add", str(tmp_path / "missing.jsonl"), *feed]) == 2
    assert "cannot read" in capsys.readouterr().err
    for args, message in ((["search", "x", "--since", "soon"], "--since must be an ISO 8601 time"),
                          (["search", "x", "--author", "a b"], "--author must be a handle"),
                          (["search", "x", "--limit", "1000"], "limit must be in 1..100"),
                          (["search", "?!"], "no words"),
                          (["show", "404"], "no post '404'")):
        assert main(["feed", *args, *feed]) == 2
        assert message in capsys.readouterr().err
    assert main(["feed", "add", bad, *feed]) == 2  # nothing of a bad file is added
    capsys.readouterr()
    assert main(["feed", "search", "pella", *feed]) == 0 and "no post matches" in capsys.readouterr().out
