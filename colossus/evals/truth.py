"""The truth report: how often the model is right, abstains, invents, and corrects false premises,
measured on held-out questions it was never trained on.

    known_accuracy       correct answers about entities whose Q&A was never trained on
    abstain_rate         "I don't know" about names never seen in training
    hallucination_rate   confident answers about those names (invented)
    recombined_abstain_rate   "I don't know" about unknown names made of known names' words (harder)
    false_premise_rate   false premises corrected (the true fact stated, the false one rejected)
    true_premise_rate    true premises accepted and the question answered (the control)
    known_ece            expected calibration error of the answer's probability on known facts"""

from __future__ import annotations

from collections import Counter, defaultdict

import torch

from colossus.data import chat_template
from colossus.data.tokenizer import Tokenizer
from colossus.evals.grading import CORRECT, NOT_ATTEMPTED, grade
from colossus.infer.generate import generate_batch
from colossus.model.gpt import GPT


def answer_all(model: GPT, tok: Tokenizer, questions: list[str], max_tokens: int = 48,
               device: str | torch.device = "cpu") -> list[tuple[str, float]]:
    """(reply, confidence) per question; confidence is the lowest probability among the reply's tokens."""
    prompts = [chat_template.render_prompt(tok, [{"role": "user", "content": q}]) for q in questions]
    done = generate_batch(model, prompts, max_tokens, {tok.end}, device=device)
    return [(tok.decode(c.ids), min(c.probs, default=0.0)) for c in done]


def expected_calibration_error(conf: list[float], correct: list[bool], bins: int = 10) -> float:
    if not conf:
        return 0.0
    buckets: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for c, ok in zip(conf, correct, strict=True):
        buckets[min(bins - 1, int(c * bins))].append((c, ok))
    n = len(conf)
    return sum(abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b)) * len(b) / n
               for b in buckets.values())


def truth_report(model: GPT, tok: Tokenizer, items: list[dict], device: str | torch.device = "cpu") -> dict:
    """Answer every item, grade it, and return the rates with the graded items."""
    replies = answer_all(model, tok, [it["question"] for it in items], device=device)
    graded = []
    tally: dict[str, Counter] = defaultdict(Counter)
    for it, (reply, conf) in zip(items, replies, strict=True):
        g = grade(it, reply)
        tally[it["kind"]][g] += 1
        graded.append({**it, "reply": reply, "grade": g, "confidence": round(conf, 4)})

    def rate(kind: str, g: str) -> float | None:
        n = sum(tally[kind].values())
        return round(tally[kind][g] / n, 4) if n else None

    known = [x for x in graded if x["kind"] == "known"]
    abstain = rate("unknown", NOT_ATTEMPTED)
    return {
        "known_accuracy": rate("known", CORRECT),
        "known_abstain_rate": rate("known", NOT_ATTEMPTED),
        "abstain_rate": abstain,
        "hallucination_rate": None if abstain is None else round(1 - abstain, 4),
        "false_premise_rate": rate("false_premise", CORRECT),
        "true_premise_rate": rate("true_premise", CORRECT),
        "recombined_abstain_rate": rate("recombined", NOT_ATTEMPTED),
        "known_ece": round(expected_calibration_error([x["confidence"] for x in known],
                                                      [x["grade"] == CORRECT for x in known]), 4),
        "counts": {k: dict(v) | {"total": sum(v.values())} for k, v in tally.items()},
        "items": graded,
    }
