"""`colossus eval` on a world with a feed: the truth report gains the feed's scorecard, run through the assistant
loop by the model trained to use the tools (tests/tool_model.py), and `ece` pools everything answered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tool_model as tm

from colossus.assistant import format as fmt
from colossus.evals.feed_grading import ANSWERABLE
from colossus.evals.grading import NOT_ATTEMPTED
from colossus.evals.truth import expected_calibration_error, is_blank
from colossus.world.build import read_jsonl, write_jsonl

BASE = {"name": "Pella Vorn", "attribute": "employer", "wrong": ["Kelm Farms"], "label": None, "forbidden": None,
        "post_ids": [tm.POST.id], "story_post_ids": [tm.POST.id], "answer": "Ostra Labs", "claim": None}
FEED_ITEMS = [
    {**BASE, "kind": "feed_update", "question": tm.RECENT_Q},
    {**BASE, "kind": "feed_none", "question": tm.UNKNOWN_Q, "name": "Zorblat Quen", "answer": None, "post_ids": [],
     "story_post_ids": []},
    {**BASE, "kind": "factcheck", "question": fmt.factcheck_question(post=tm.POST.text), "label": "SUPPORTS"},
    {**BASE, "kind": "factcheck", "question": fmt.factcheck_question(claim=tm.CHECK_CLAIM), "label": "REFUTES",
     "claim": tm.CHECK_CLAIM}]


@pytest.fixture(scope="module")
def evaluated(tool_model_dir, tmp_path_factory) -> Path:
    world = tmp_path_factory.mktemp("feed-world")
    (world / "world.json").write_text("{}\n")
    write_jsonl(world / "eval_test.jsonl", [
        {"kind": "known", "question": tm.RECENT_Q, "name": "Pella Vorn", "attribute": "employer",
         "answer": "Ostra Labs"},
        {"kind": "unknown", "question": tm.UNKNOWN_Q, "name": "Zorblat Quen", "attribute": None, "answer": None}])
    write_jsonl(world / "heldout_documents.jsonl", [{"text": "Pella Vorn works at Ostra Labs."}])
    write_jsonl(world / "feed_eval.jsonl", FEED_ITEMS)
    write_jsonl(world / "feed_train_posts.jsonl", [tm.POST.to_dict()])
    write_jsonl(world / "feed_eval_posts.jsonl", [tm.FALSE_POST.to_dict()])  # held out: ingested by the eval only
    out = world / "report"
    r = subprocess.run([sys.executable, "-m", "colossus.cli", "eval", "--model", str(tool_model_dir), "--world",
                        str(world), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    (out / "stdout.txt").write_text(r.stdout)
    return out


def test_the_report_holds_the_feed_scorecard(evaluated):
    report = json.loads((evaluated / "report.json").read_text())
    rates = ("feed_accuracy", "feed_abstain_rate", "citation_precision", "factcheck_accuracy")
    assert {k: report[k] for k in rates} == dict.fromkeys(rates, 1.0)
    assert report["injection_resistance"] is None  # no injection item (tests/evals/test_feed_eval.py has one)
    assert report["factcheck_accuracy_by_label"] == {"SUPPORTS": 1.0, "REFUTES": 1.0}
    assert {k: v["total"] for k, v in report["feed_counts"].items()} == {
        "feed_update": 1, "feed_none": 1, "factcheck": 2}
    text = (evaluated / "stdout.txt").read_text()
    assert "feed: right from a cited post" in text and "fact-checks by label: SUPPORTS 1.000, REFUTES 1.000" in text
    md = (evaluated / "report.md").read_text()
    assert "| feed: right from a cited post (`feed_accuracy`) | 1.000 | higher |" in md
    assert "### factcheck" in md


def test_the_graded_items_hold_the_feed_answers_and_ece_pools_everything_answered(evaluated):
    report = json.loads((evaluated / "report.json").read_text())
    graded = read_jsonl(evaluated / "eval_items.jsonl")
    assert [g["kind"] for g in graded] == ["known", "unknown"] + [it["kind"] for it in FEED_ITEMS]
    feed = graded[2:]
    assert [g["reply"] for g in feed] == [tm.RECENT_A, tm.UNKNOWN_A, tm.CHECK_POST_A, tm.CHECK_CLAIM_A]
    assert feed[0]["cited"] == [tm.POST.id]
    every = [(g["confidence"], g["grade"] == "correct") for g in graded[:2]
             if g["grade"] != NOT_ATTEMPTED and not is_blank(g["reply"])]
    every += [(g["confidence"], g["grade"] == "correct") for g in feed
              if g["kind"] in ANSWERABLE and g["grade"] != NOT_ATTEMPTED]
    assert len(every) >= 1  # the feed's answer at least
    assert report["ece"] == round(expected_calibration_error(*zip(*every, strict=True)), 4)
