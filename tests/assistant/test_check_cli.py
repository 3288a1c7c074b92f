"""`colossus feed check ID|TEXT` through the CLI, with the model trained to check (tests/tool_model.py)."""

from __future__ import annotations

import json

import pytest
import tool_model as tm

from colossus.cli import main
from colossus.feed.feed import Feed


@pytest.fixture
def feed_dir(tmp_path):
    feed = Feed(tmp_path / "feed")
    feed.ingest([tm.POST, tm.FALSE_POST])
    feed.close()
    return str(tmp_path / "feed")


def test_a_post_found_false_prints_its_label_and_evidence_and_gets_a_note(feed_dir, tool_model_dir, capsys):
    args = ["feed", "check", tm.FALSE_POST.id, "--model", str(tool_model_dir), "--feed", feed_dir]
    assert main([*args, "--note"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"post {tm.FALSE_POST.id}: {tm.FALSE_POST.text}"
    assert out[1] == tm.CHECK_CLAIM_A
    assert out[2].startswith(f"  [1] @{tm.POST.author} ") and out[2].endswith(f"(/posts/{tm.POST.id})")
    assert out[3].startswith("note ") and "MISINFORMED_OR_POTENTIALLY_MISLEADING" in out[3]
    feed = Feed(feed_dir)
    try:
        (note,) = feed.notes(tm.FALSE_POST.id)
    finally:
        feed.close()
    assert note.sources == (f"/posts/{tm.POST.id}",) and note.author == "colossus"


def test_a_claim_as_json(feed_dir, tool_model_dir, capsys):
    assert main(["feed", "check", tm.CHECK_CLAIM, "--model", str(tool_model_dir), "--feed", feed_dir, "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert (v["post_id"], v["claim"], v["label"], v["verdict_given"]) == (None, tm.CHECK_CLAIM, "REFUTES", True)
    assert [e["id"] for e in v["evidence"]] == [tm.POST.id] and v["note"] is None


def test_an_empty_target_is_a_clear_error(feed_dir, tool_model_dir, capsys):
    assert main(["feed", "check", " ", "--model", str(tool_model_dir), "--feed", feed_dir]) != 0
    assert "give a post id of the feed or the text of a claim" in capsys.readouterr().err
