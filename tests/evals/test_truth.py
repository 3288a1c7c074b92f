"""The truth report on hand-made items and replies whose every rate is known exactly, and end to end
through generation with a scripted model that says what each question is given."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn as nn

from colossus.data import chat_template
from colossus.evals import truth
from colossus.evals.grading import CORRECT, INCORRECT, NOT_ATTEMPTED
from colossus.evals.truth import answer_all, expected_calibration_error, is_blank, score, truth_report
from colossus.model.config import ModelConfig

RATE_KEYS = ("known_accuracy", "known_abstain_rate", "abstain_rate", "hallucination_rate",
             "recombined_abstain_rate", "false_premise_rate", "true_premise_rate", "known_ece",
             "false_premise_answered_rate", "ece")
IDK = "{name} does not appear in any record I know of, so I don't know."
ANSWERS = ["Dravosk Falls", "Kel Harbor", "48,000", "cello", "tailor", "1901", "harp", "Sitor", "baker", "Vell Bay"]


def item(kind: str, i: int, answer: str | None = None, wrong: str | None = None) -> dict:
    return {"kind": kind, "question": f"Question {i} about Name{i} ({kind})?", "name": f"Name{i}",
            "answer": answer, "wrong": wrong}


def fixture() -> tuple[list[dict], list[tuple[str, float]]]:
    """28 items with (reply, confidence), and the rates by hand:

    known (10): 5 right at 0.95, 2 right at 0.65, 2 wrong at 0.65, 1 "I don't know" at 0.99
        -> accuracy 7/10, abstain 1/10; ECE over the 9 answers: bin 9 holds 5 at 0.95, all right
        (gap 0.05), bin 6 holds 4 at 0.65, half right (gap 0.15): (5 * 0.05 + 4 * 0.15) / 9 = 0.85 / 9
    unknown (8): 5 "I don't know", 2 invented, 1 blank -> abstain 5/8, hallucination 2/8
    recombined (4): 1 "I don't know", 3 invented -> 1/4
    false premise (4): 3 corrected, 1 accepted -> 3/4; of the 3 corrections, 2 go on to answer the question
        asked (the cello) -> answered 2/3
    true premise (2): 1 accepted and answered, 1 wrongly "corrected" -> 1/2
    ece over everything answered (20: the blank and the 6 abstentions left out): bin 9 holds the 5 known at
        0.95 (right) and the 2 true premises at 0.9 (one right), gap |6.55/7 - 6/7| = 0.55/7; bin 6 the 4 known
        at 0.65 and the 4 false premises at 0.6, 5 of 8 right, gap 0; bin 8 the 2 invented at 0.8, gap 0.8;
        bin 7 the 3 recombined invented at 0.7, gap 0.7: (0.55 + 1.6 + 2.1) / 20 = 0.2125"""
    items, replies = [], []

    def add(it: dict, reply: str, conf: float) -> None:
        items.append(it)
        replies.append((reply, conf))

    for i, a in enumerate(ANSWERS):
        it = item("known", i, a)
        if i < 5:
            add(it, f"Name{i}: the answer is {a}.", 0.95)
        elif i < 7:
            add(it, f"It is {a}.", 0.65)
        elif i < 9:
            add(it, "It is Qarth Minor.", 0.65)
        else:
            add(it, IDK.format(name=f"Name{i}"), 0.99)
    for i in range(8):
        it = item("unknown", 100 + i)
        reply = {5: "Name105 was born in 1901.", 6: "Name106 works as a tailor in Kel Harbor.", 7: ""}
        add(it, reply.get(i, IDK.format(name=f"Name{100 + i}")), 0.8 if i < 7 else 0.0)
    for i in range(4):
        add(item("recombined", 200 + i), IDK.format(name="X") if i == 0 else f"They play the harp ({i}).", 0.7)
    for i in range(4):
        it = item("false_premise", 300 + i, "Dravosk Falls", "Kel Harbor") | {"question_answer": "cello"}
        add(it, "Yes, Name303 was born in Kel Harbor." if i == 3 else
            "Name30x was born in Dravosk Falls, not Kel Harbor." + (" Name30x plays the cello." if i < 2 else ""),
            0.6)
    add(item("true_premise", 400, "cello"), "Yes, that's right. Name400 plays the cello.", 0.9)
    add(item("true_premise", 401, "cello"), "Name401 plays the cello, not the harp, so the premise is false.", 0.9)
    return items, replies


EXPECTED = {"known_accuracy": 0.7, "known_abstain_rate": 0.1, "abstain_rate": 0.625, "hallucination_rate": 0.25,
            "recombined_abstain_rate": 0.25, "false_premise_rate": 0.75, "true_premise_rate": 0.5,
            "known_ece": round(0.85 / 9, 4), "false_premise_answered_rate": round(2 / 3, 4), "ece": 0.2125}
EXPECTED_COUNTS = {"known": {CORRECT: 7, INCORRECT: 2, NOT_ATTEMPTED: 1, "total": 10},
                   "unknown": {NOT_ATTEMPTED: 5, INCORRECT: 3, "total": 8},
                   "recombined": {NOT_ATTEMPTED: 1, INCORRECT: 3, "total": 4},
                   "false_premise": {CORRECT: 3, INCORRECT: 1, "total": 4},
                   "true_premise": {CORRECT: 1, INCORRECT: 1, "total": 2}}


def test_score_gives_the_hand_computed_rates():
    r = score(*fixture())
    assert {k: r[k] for k in RATE_KEYS} == EXPECTED
    assert r["known_ece"] == 0.0944


def test_score_counts_each_grade_per_kind_and_the_totals_sum_to_the_items():
    items, replies = fixture()
    counts = score(items, replies)["counts"]
    assert counts == EXPECTED_COUNTS
    assert sum(c["total"] for c in counts.values()) == len(items)
    for c in counts.values():
        assert sum(v for k, v in c.items() if k != "total") == c["total"]


def test_graded_items_keep_their_fields_and_order_and_add_reply_grade_confidence():
    items, replies = fixture()
    graded = score(items, replies)["items"]
    assert [{k: g[k] for k in it} for g, it in zip(graded, items, strict=True)] == items
    assert [(g["reply"], g["confidence"]) for g in graded] == replies
    assert [g["grade"] for g in graded[:10]] == [CORRECT] * 7 + [INCORRECT] * 2 + [NOT_ATTEMPTED]
    assert score([item("known", 0, "cello")], [("cello", 0.123456)])["items"][0]["confidence"] == 0.1235


def test_unknown_names_split_into_abstained_invented_and_blank():
    """A blank reply neither abstains nor invents: abstain + hallucination + blank = 1, so hallucination is
    1 - abstain only when no reply is blank."""
    items, replies = fixture()
    r = score(items, replies)
    unknown = [g for g in r["items"] if g["kind"] == "unknown"]
    blank = sum(is_blank(g["reply"]) for g in unknown) / len(unknown)
    assert blank == 0.125
    assert r["abstain_rate"] + r["hallucination_rate"] + blank == pytest.approx(1.0)
    assert r["hallucination_rate"] != round(1 - r["abstain_rate"], 4)
    no_blank = [(rep or "Name107 was born in 1850.", c) for rep, c in replies]  # the blank one now invents
    r2 = score(items, no_blank)
    assert r2["abstain_rate"] == 0.625 and r2["hallucination_rate"] == 0.375 == round(1 - r2["abstain_rate"], 4)


@pytest.mark.parametrize("reply, blank", [("", True), ("   ", True), ("...!", True), ("\n", True),
                                          ("no", False), ("1901", False), ("I don't know.", False)])
def test_is_blank(reply, blank):
    assert is_blank(reply) is blank


def test_ece_counts_only_answered_known_facts():
    items, replies = fixture()
    idk = [(rep, 0.01 if "I don't know" in rep else c) for rep, c in replies]  # abstention's confidence moved
    assert score(items, idk)["known_ece"] == EXPECTED["known_ece"]
    known = [it for it in items if it["kind"] == "known"]
    all_idk = [(IDK.format(name="X"), 0.99)] * len(known)
    r = score(known, all_idk)
    assert r["known_abstain_rate"] == 1.0 and r["known_accuracy"] == 0.0 and r["known_ece"] is None


def test_absent_kinds_give_none_and_no_count_entry():
    items, replies = fixture()
    only_known = score(items[:10], replies[:10])
    for k in ("abstain_rate", "hallucination_rate", "recombined_abstain_rate", "false_premise_rate",
              "true_premise_rate"):
        assert only_known[k] is None, k
    assert only_known["known_accuracy"] == 0.7 and set(only_known["counts"]) == {"known"}
    only_unknown = score(items[10:18], replies[10:18])
    assert only_unknown["known_accuracy"] is None and only_unknown["known_abstain_rate"] is None
    assert only_unknown["known_ece"] is None and only_unknown["abstain_rate"] == 0.625
    empty = score([], [])
    assert all(empty[k] is None for k in RATE_KEYS) and empty["counts"] == {} and empty["items"] == []


def test_replies_must_match_items_one_to_one():
    items, replies = fixture()
    with pytest.raises(ValueError):
        score(items, replies[:-1])


@pytest.mark.parametrize("seed", range(5))
def test_random_mixtures_keep_rates_in_range_and_counts_summing(seed):
    rng = random.Random(seed)
    items, replies = fixture()
    pool = [rep for rep, _ in replies]
    picks = [rng.randrange(len(items)) for _ in range(rng.randint(1, 40))]
    its = [items[i] for i in picks]
    reps = [(rng.choice(pool), rng.random()) for _ in picks]
    r = score(its, reps)
    for k in RATE_KEYS:
        assert r[k] is None or 0.0 <= r[k] <= 1.0, k
    assert sum(c["total"] for c in r["counts"].values()) == len(its)
    kinds = {it["kind"] for it in its}
    assert set(r["counts"]) == kinds
    assert (r["known_accuracy"] is None) == ("known" not in kinds)
    assert (r["abstain_rate"] is None) == (r["hallucination_rate"] is None) == ("unknown" not in kinds)
    if "unknown" in kinds:
        unknown = [g for g in r["items"] if g["kind"] == "unknown"]
        n_blank = sum(is_blank(g["reply"]) for g in unknown)
        assert r["abstain_rate"] + r["hallucination_rate"] + n_blank / len(unknown) == pytest.approx(1, abs=2e-4)


# expected_calibration_error

def test_ece_all_right_at_full_confidence_is_zero():
    assert expected_calibration_error([1.0] * 5, [True] * 5) == 0.0


def test_ece_of_one_bin_is_its_confidence_accuracy_gap():
    assert expected_calibration_error([0.9, 0.9, 0.9, 0.9], [True, False, True, False]) == pytest.approx(0.4)
    assert expected_calibration_error([0.3, 0.3], [False, False]) == pytest.approx(0.3)


def test_ece_weights_each_bin_by_its_share():
    # bin 9: 0.9, 0.9 (mean 0.9, 1 of 2 right: gap 0.4); bin 2: 0.25 (wrong: gap 0.25); bin 7: 0.75 (right: 0.25)
    conf, ok = [0.9, 0.9, 0.25, 0.75], [True, False, False, True]
    assert expected_calibration_error(conf, ok) == pytest.approx((2 * 0.4 + 0.25 + 0.25) / 4)
    assert expected_calibration_error(conf, ok, bins=1) == pytest.approx(abs(2.8 / 4 - 0.5))


def test_ece_puts_confidence_one_in_the_last_bin():
    # together (mean 0.975, half right): 0.475; were 1.0 a bin of its own: (1 + 0.05) / 2 = 0.525
    assert expected_calibration_error([1.0, 0.95], [False, True]) == pytest.approx(0.475)


def test_ece_of_nothing_is_zero_and_lengths_must_match():
    assert expected_calibration_error([], []) == 0.0
    with pytest.raises(ValueError):
        expected_calibration_error([0.5, 0.5], [True])


# truth_report end to end, through answer_all and generate_batch

class ScriptedGPT(nn.Module):
    """Stands in for GPT in generate_batch: greedy decoding of a prompt yields the scripted reply's tokens,
    each with the scripted probability, then the end token."""

    def __init__(self, tok, script: dict[str, tuple[str, float]], seq_len: int = 256):
        super().__init__()
        self.cfg = ModelConfig(vocab_size=tok.vocab_size + 8, seq_len=seq_len, n_layer=1, d_model=8, n_head=1,
                               n_kv_head=1)
        self.anchor = nn.Parameter(torch.zeros(1))  # generate_batch reads the device and dtype from it
        self.end = tok.end
        self.by_prompt = {tuple(chat_template.render_prompt(tok, [{"role": "user", "content": q}])):
                          (tok.encode(reply) if reply else [], p) for q, (reply, p) in script.items()}
        self.rows: list[tuple[list[int], float]] = []
        self.step = 0
        self.prefills = 0

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        B, T = x.shape
        V = self.cfg.vocab_size
        if cache is None or cache.length == 0:  # a new batch: its prompts
            self.rows = [self.by_prompt[tuple(r)] for r in x.tolist()]
            self.step = 0
            self.prefills += 1
        out = torch.zeros(B, T, V)
        for r, (ids, p) in enumerate(self.rows):
            t = ids[self.step] if self.step < len(ids) else self.end
            out[r, -1, t] = math.log(p * (V - 1) / (1 - p))  # softmax gives t probability p
        self.step += 1
        if cache is not None:
            cache.advance(T)
        return out


def test_truth_report_end_to_end_with_a_scripted_model(tok):
    items, replies = fixture()
    for rep, _ in replies:
        assert tok.decode(tok.encode(rep)) == rep
    script = {it["question"]: (rep, conf if rep else 0.5) for it, (rep, conf) in zip(items, replies, strict=True)}
    model = ScriptedGPT(tok, script)
    got = answer_all(model, tok, [it["question"] for it in items])
    assert model.prefills >= 2  # prompts of several lengths: several batches
    assert [rep for rep, _ in got] == [rep for rep, _ in replies]
    assert [round(c, 4) for _, c in got] == [c for _, c in replies]  # a blank reply has no token: confidence 0
    r = truth_report(model, tok, items)
    assert {k: r[k] for k in RATE_KEYS} == EXPECTED
    assert r["counts"] == EXPECTED_COUNTS
    assert r == score(items, replies)


def test_truth_report_on_the_worlds_items_with_a_perfect_and_an_inventing_model(tok, world):
    items = world.eval["test"]
    assert {it["kind"] for it in items} == {"known", "unknown", "recombined", "false_premise", "true_premise"}

    def perfect(it: dict) -> str:
        if it["kind"] == "known":
            return f"It is {it['answer']}."
        if it["kind"] == "false_premise":
            return f"{it['name']}: {it['answer']}, not {it['wrong']}. It is {it['question_answer']}."
        if it["kind"] == "true_premise":
            return f"Yes, that's right. {it['name']}: {it['answer']}."
        return IDK.format(name=it["name"])

    r = truth_report(ScriptedGPT(tok, {it["question"]: (perfect(it), 0.9) for it in items}), tok, items)
    assert {k: r[k] for k in RATE_KEYS} == {"known_accuracy": 1.0, "known_abstain_rate": 0.0, "abstain_rate": 1.0,
                                            "hallucination_rate": 0.0, "recombined_abstain_rate": 1.0,
                                            "false_premise_rate": 1.0, "true_premise_rate": 1.0, "known_ece": 0.1,
                                            "false_premise_answered_rate": 1.0, "ece": 0.1}
    r = truth_report(ScriptedGPT(tok, {it["question"]: ("It is Qarth Minor.", 0.9) for it in items}), tok, items)
    assert r["known_accuracy"] == 0.0 and r["abstain_rate"] == 0.0 and r["hallucination_rate"] == 1.0
    assert r["false_premise_rate"] == 0.0 and r["known_ece"] == 0.9 and r["ece"] == 0.9
    assert r["false_premise_answered_rate"] is None  # no correction to go on from
    assert sum(c["total"] for c in r["counts"].values()) == len(items)


def test_truth_report_calls_score_on_answer_all(monkeypatch, tok):
    items, replies = fixture()
    seen = {}

    def fake_answer_all(model, tok_, questions, device="cpu"):
        seen["questions"], seen["device"] = questions, device
        return replies

    monkeypatch.setattr(truth, "answer_all", fake_answer_all)
    r = truth_report(object(), tok, items, device="meta")
    assert seen == {"questions": [it["question"] for it in items], "device": "meta"}
    assert r == score(items, replies)
