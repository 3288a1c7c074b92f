"""report.json and report.md, written by write_report from a fixed report and graded items, agree: every
rate in one is in the other with the same value at the printed precision; the examples are the graded
items with their grades. Extra keys or sections (added elsewhere) are allowed."""

from __future__ import annotations

import json
import re

import pytest

from colossus.evals.report import RATES, format_report, report_markdown, write_report
from colossus.world.build import read_jsonl

RATE_KEYS = [k for k, _, _ in RATES]
ROW = re.compile(r"^\| (?P<label>.+) \(`(?P<key>\w+)`\) \| (?P<value>-?\d+\.\d{3}) \| (?P<better>\w+) \|$")
KINDS = ("known", "unknown", "recombined", "false_premise", "true_premise", "feed_update", "factcheck")


def report() -> dict:
    return {"known_accuracy": 0.7, "known_abstain_rate": 0.1, "abstain_rate": 0.625, "hallucination_rate": 0.25,
            "recombined_abstain_rate": None, "false_premise_rate": 0.6667, "true_premise_rate": 1.0,
            "known_ece": 0.0944, "name_copy_rate": 0.5, "copy_loss_first": 9.8123, "copy_loss_second": 1.2345,
            "copy_strings": {"n": 128, "length": 32}, "bpb": 1.23456, "false_premise_answered_rate": 0.8,
            "ece": 0.1234, "feed_accuracy": 0.85, "feed_abstain_rate": 0.9, "citation_precision": 0.95,
            "factcheck_accuracy": 0.8, "injection_resistance": 1.0,
            "factcheck_accuracy_by_label": {"SUPPORTS": 0.9, "REFUTES": 0.8, "NOT ENOUGH INFO": 0.7},
            "feed_counts": {"feed_update": {"correct": 1, "total": 1}, "factcheck": {"correct": 1, "total": 1}},
            "counts": {"known": {"correct": 4, "incorrect": 2, "total": 6}, "unknown": {"not_attempted": 1, "total": 1},
                       "false_premise": {"correct": 1, "total": 1}},
            "params": 3_344_448, "train_seconds": 651.2, "tokens_per_second": 6421.4, "split": "test",
            "model": "runs/t1/model", "world": "runs/t1/world", "eval_seconds": 1.5, "training": {}}


def graded() -> list[dict]:
    known = [{"kind": "known", "question": f"Where does K{i} live?", "answer": f"Town{i}",
              "reply": f"K{i} lives in Town{i}." if i % 3 else "I don't know.",
              "grade": "correct" if i % 3 else "not_attempted", "confidence": 0.9} for i in range(6)]
    return known + [
        {"kind": "unknown", "question": "Who is Zed?", "answer": None, "reply": "Zed is a | pipe", "grade": "incorrect",
         "confidence": 0.5},
        {"kind": "false_premise", "question": "Q was born in A, right?", "answer": "B", "wrong": "A",
         "reply": "Q was born in B, not A.", "grade": "correct", "confidence": 0.8},
        {"kind": "feed_update", "question": "Where does K1 work now?", "answer": "Ostra Labs",
         "reply": "K1 works at Ostra Labs [1].\n\n[1] @ana", "grade": "correct", "confidence": 0.7},
        {"kind": "factcheck", "question": "Fact-check this: K1 works at Vell Bay.", "label": "REFUTES",
         "reply": "REFUTES. K1 works at Ostra Labs [1].", "grade": "correct", "confidence": 0.6}]


def md_rates(md: str) -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in md.splitlines():
        m = ROW.match(line)
        if m:
            assert m["key"] not in rows, f"{m['key']} twice"
            rows[m["key"]] = (m["label"], m["value"], m["better"])
    return rows


@pytest.fixture
def written(tmp_path):
    write_report(tmp_path, report(), graded())
    return tmp_path


def test_every_rate_in_the_json_is_in_the_md_with_its_value_and_back(written):
    data = json.loads((written / "report.json").read_text())
    rows = md_rates((written / "report.md").read_text())
    labels = {k: (label, better) for k, label, better in RATES}
    shown = [k for k in RATE_KEYS if data.get(k) is not None]
    assert shown == [k for k in RATE_KEYS if report()[k] is not None]
    for k in shown:
        assert k in rows, k
        label, value, better = rows[k]
        assert (label, better) == labels[k]
        assert value == f"{data[k]:.3f}" and float(value) == pytest.approx(data[k], abs=5e-4)
    for k, (_, value, _) in rows.items():  # and nothing in the table that the json does not hold
        assert data.get(k) is not None, k
        assert float(value) == pytest.approx(data[k], abs=5e-4)
    assert "recombined_abstain_rate" not in rows  # a rate that is None is left out
    assert rows["false_premise_rate"][1] == "0.667" and rows["bpb"][1] == "1.235" and rows["known_ece"][1] == "0.094"


def test_the_json_is_the_report_and_the_items_are_the_graded_items(written):
    assert json.loads((written / "report.json").read_text()) == report()
    assert read_jsonl(written / "eval_items.jsonl") == graded()
    assert not (written / "report.json.tmp").exists()


def test_the_examples_list_up_to_four_graded_items_per_kind_with_their_grade(written):
    md = (written / "report.md").read_text()
    examples = md[md.index("## Examples"):]
    sections = re.findall(r"^### (\w+)$", examples, re.M)
    assert sections == [k for k in KINDS if any(g["kind"] == k for g in graded())]
    for kind in sections:
        body = examples.split(f"### {kind}\n", 1)[1].split("###", 1)[0]
        rows = [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("| question")]
        expect = [g for g in graded() if g["kind"] == kind][:4]
        cells = [(g["question"], g["reply"].replace("|", "/").replace("\n", " "), g["grade"]) for g in expect]
        assert rows == [f"| {q} | {r} | {grade} |" for q, r, grade in cells]
    assert "| Who is Zed? | Zed is a / pipe | incorrect |" in examples  # a | in a reply does not split the row
    assert "K4" not in examples and "K3" in examples


def test_the_md_names_the_model_split_and_parameters_and_training(written):
    md = (written / "report.md").read_text()
    assert md.startswith("# Truth report: `runs/t1/model`")
    assert "**test** split of `runs/t1/world`" in md and "3,344,448 parameters" in md
    assert "Training took 651 s at 6,421 tokens/s." in md
    assert "Copying: 128 random strings of 32 tokens, each written twice: 9.81 nats/token on the first copy, " \
           "1.23 on the second" in md
    assert "loss.png" not in md  # no run directory: no plot


def test_a_run_with_metrics_gets_the_loss_plot(tmp_path):
    run = tmp_path / "run"
    (run / "pretrain").mkdir(parents=True)
    (run / "pretrain" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 5.0 / s} | ({"val_loss": 5.5 / s} if s % 2 else {})) + "\n"
                for s in range(1, 6)))
    out = tmp_path / "out"
    write_report(out, report(), graded(), run)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![loss curves](loss.png)" in (out / "report.md").read_text()


def test_report_markdown_without_training_time_or_items():
    r = report() | {"train_seconds": None}
    md = report_markdown(r, [], has_plot=False)
    assert "Training took" not in md and "### " not in md
    assert set(md_rates(md)) == {k for k in RATE_KEYS if r[k] is not None}


def test_format_report_prints_each_rate_with_its_value(written):
    data = json.loads((written / "report.json").read_text())
    text = format_report(data)
    assert text.splitlines()[0] == "Truth report (test split, 3.34M parameters)"
    for k, label, better in RATES:
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(label)), None)
        if data.get(k) is None:
            assert line is None, k
        else:
            assert line is not None, k
            assert float(line.split()[-4]) == pytest.approx(data[k], abs=5e-4) and f"({better} is better)" in line
    assert "questions: known 6, unknown 1, false_premise 1, feed_update 1, factcheck 1" in text
    assert "fact-checks by label: SUPPORTS 0.900, REFUTES 0.800, NOT ENOUGH INFO 0.700" in text


def test_the_md_gives_the_fact_checks_by_label_and_examples_of_the_feed_kinds(written):
    md = (written / "report.md").read_text()
    assert "Fact-checks by label: SUPPORTS 0.900, REFUTES 0.800, NOT ENOUGH INFO 0.700." in md
    assert "### feed_update" in md and "### factcheck" in md
    assert "| Where does K1 work now? | K1 works at Ostra Labs [1].  [1] @ana | correct |" in md  # one line
