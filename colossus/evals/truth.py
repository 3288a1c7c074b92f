"""The truth report: how often the model is right, abstains, invents, and corrects false premises,
measured on held-out questions it was never trained on.

    known_accuracy       correct answers about entities whose Q&A was never trained on
    known_abstain_rate   "I don't know" about those entities
    abstain_rate         "I don't know" about names never seen in training
    hallucination_rate   answers about those names (invented): a reply that says something and does not
                         abstain. A blank reply (nothing but punctuation or whitespace) is neither an
                         abstention nor an invention, so abstain_rate + hallucination_rate is 1 less the
                         share of blank replies.
    recombined_abstain_rate   "I don't know" about unknown names made of known names' words (harder)
    false_premise_rate   false premises corrected (the true fact stated, the false one rejected)
    true_premise_rate    true premises accepted and the question answered (the control)
    known_ece            expected calibration error of the answer's probability on the known facts the
                         model answered (an "I don't know" is not an answer, so its probability says
                         nothing about the calibration of answers)

A rate is None when the items hold no question of its kind (known_ece: no answered known fact).
`score` is the pure part (items and replies in, rates out); `truth_report` generates the replies."""

from __future__ import annotations

from collections import Counter, defaultdict

import torch

from colossus.data import chat_template
from colossus.data.tokenizer import Tokenizer
from colossus.evals.grading import CORRECT, INCORRECT, NOT_ATTEMPTED, grade, normalise, states
from colossus.infer.generate import generate_batch
from colossus.model.gpt import GPT


def answer_all(model: GPT, tok: Tokenizer, questions: list[str], max_tokens: int = 48,
               device: str | torch.device = "cpu") -> list[tuple[str, float]]:
    """(reply, confidence) per question; confidence is the lowest probability among the reply's tokens."""
    prompts = [chat_template.render_prompt(tok, [{"role": "user", "content": q}]) for q in questions]
    done = generate_batch(model, prompts, max_tokens, {tok.end}, device=device)
    return [(tok.decode(c.ids), min(c.probs, default=0.0)) for c in done]


def expected_calibration_error(conf: list[float], correct: list[bool], bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by the share of the
    predictions in each bin (confidence 1.0 falls in the last bin); 0 for no predictions."""
    if not conf:
        return 0.0
    buckets: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for c, ok in zip(conf, correct, strict=True):
        buckets[min(bins - 1, int(c * bins))].append((c, ok))
    n = len(conf)
    return sum(abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b)) * len(b) / n
               for b in buckets.values())


def ece_of(pairs: list[tuple[float, bool]]) -> float | None:
    """The expected calibration error of (confidence, correct) pairs, rounded; None for no pairs."""
    return round(expected_calibration_error(*zip(*pairs, strict=True)), 4) if pairs else None


def is_blank(reply: str) -> bool:
    """A reply with no word in it: neither an answer nor an abstention."""
    return not normalise(reply).strip()


def score(items: list[dict], replies: list[tuple[str, float]]) -> dict:
    """Grade each (reply, confidence) against its item and return the rates, the counts of each grade
    per kind, and the graded items."""
    graded = []
    tally: dict[str, Counter] = defaultdict(Counter)
    for it, (reply, conf) in zip(items, replies, strict=True):
        g = grade(it, reply)
        tally[it["kind"]][g] += 1
        graded.append({**it, "reply": reply, "grade": g, "confidence": round(conf, 4)})

    def share(kind: str, hits: int) -> float | None:
        n = sum(tally.get(kind, Counter()).values())  # get: an absent kind gets no entry in the counts
        return round(hits / n, 4) if n else None

    def rate(kind: str, g: str) -> float | None:
        return share(kind, tally.get(kind, Counter())[g])

    invented = sum(1 for x in graded if x["kind"] == "unknown" and x["grade"] == INCORRECT
                   and not is_blank(x["reply"]))
    answered = [(conf, g["grade"] == CORRECT) for g, (_, conf) in zip(graded, replies, strict=True)
                if g["kind"] == "known" and g["grade"] != NOT_ATTEMPTED]
    corrected = [g for g in graded if g["kind"] == "false_premise" and g["grade"] == CORRECT
                 and g.get("question_answer")]
    went_on = sum(states(g["reply"], g["question_answer"]) for g in corrected)
    return {
        "known_accuracy": rate("known", CORRECT),
        "known_abstain_rate": rate("known", NOT_ATTEMPTED),
        "abstain_rate": rate("unknown", NOT_ATTEMPTED),
        "hallucination_rate": share("unknown", invented),
        "false_premise_rate": rate("false_premise", CORRECT),
        "true_premise_rate": rate("true_premise", CORRECT),
        "recombined_abstain_rate": rate("recombined", NOT_ATTEMPTED),
        "false_premise_answered_rate": round(went_on / len(corrected), 4) if corrected else None,
        "known_ece": ece_of(answered),
        "ece": ece_of(answered_items(graded)),
        "counts": {k: dict(v) | {"total": sum(v.values())} for k, v in tally.items()},
        "items": graded,
    }


def answered_items(graded: list[dict]) -> list[tuple[float, bool]]:
    """(confidence, correct) of every graded item that was answered: neither abstained on nor blank."""
    return [(g["confidence"], g["grade"] == CORRECT) for g in graded
            if g["grade"] != NOT_ATTEMPTED and not is_blank(g["reply"])]


def truth_report(model: GPT, tok: Tokenizer, items: list[dict], device: str | torch.device = "cpu") -> dict:
    """Answer every item, grade it, and return the rates with the graded items."""
    return score(items, answer_all(model, tok, [it["question"] for it in items], device=device))
