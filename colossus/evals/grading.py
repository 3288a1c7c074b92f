"""SimpleQA-style grading of one reply: correct, incorrect, or not attempted.

Every question in the world has a closed answer, so grading is string matching on normalised text,
with no judge model: a reply is correct when it states the gold value, not attempted when it says it
does not know, and incorrect otherwise."""

from __future__ import annotations

import re

ABSTAIN = re.compile(r"\b(i don't know|i do not know|no information|not familiar|can't say|cannot say|"
                     r"can't answer|cannot answer|not sure)\b")
CORRECTION = re.compile(r"\b(not|false|mistaken|incorrect|wrong|actually|premise)\b")

CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not_attempted"


def normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"(?<=\d),(?=\d)", "", text)  # 48,000 -> 48000
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " " + " ".join(text.split()) + " "


def states(reply: str, value: str) -> bool:
    return normalise(value) in normalise(reply)


def abstains(reply: str) -> bool:
    return bool(ABSTAIN.search(normalise(reply)))


def rejects(reply: str, value: str) -> bool:
    """'not Kel Harbor', 'not in Kel Harbor', 'not the harp' ..."""
    v = re.escape(normalise(value).strip())
    return bool(re.search(rf" not (in |the |a |an )?{v} ", normalise(reply)))


def corrects(reply: str, true: str, wrong: str) -> bool:
    """The reply states the truth and rejects the false premise (explicitly, or by saying the
    premise is wrong without repeating it), and does not reject the truth."""
    if not states(reply, true) or rejects(reply, true):
        return False
    return rejects(reply, wrong) or (bool(CORRECTION.search(normalise(reply))) and not states(reply, wrong))


def grade(item: dict, reply: str) -> str:
    """Grade a reply to an evaluation item from the world (see colossus.world.chats)."""
    kind = item["kind"]
    if abstains(reply):
        return NOT_ATTEMPTED
    if kind in ("unknown", "recombined"):
        return INCORRECT  # any answer about a name that does not exist is invented
    if kind == "known":
        return CORRECT if states(reply, item["answer"]) else INCORRECT
    if kind == "false_premise":  # corrected: states the true value and rejects the stated one
        return CORRECT if corrects(reply, item["answer"], item["wrong"]) else INCORRECT
    if kind == "true_premise":  # accepted: answers the question and does not "correct" a true premise
        ok = states(reply, item["answer"]) and not CORRECTION.search(normalise(reply))
        return CORRECT if ok else INCORRECT
    raise ValueError(f"unknown item kind {kind!r}")
