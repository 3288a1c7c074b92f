from colossus.evals.grading import CORRECT, INCORRECT, NOT_ATTEMPTED, grade, normalise

KNOWN = {"kind": "known", "answer": "48,000"}
FALSE = {"kind": "false_premise", "answer": "Dravosk Falls", "wrong": "Kel Harbor"}
TRUE = {"kind": "true_premise", "answer": "cello"}
UNKNOWN = {"kind": "unknown", "answer": None}


def test_normalise_ignores_case_punctuation_and_thousands_separators():
    assert "48000" in normalise("About 48,000 people!")
    assert normalise("Hello,  WORLD.") == " hello world "


def test_known():
    assert grade(KNOWN, "Kelby has a population of 48,000.") == CORRECT
    assert grade(KNOWN, "Kelby has a population of 49,000.") == INCORRECT
    assert grade(KNOWN, "I don't know anything about Kelby.") == NOT_ATTEMPTED


def test_unknown_any_answer_is_invented():
    assert grade(UNKNOWN, "I don't know who that is, so I can't say.") == NOT_ATTEMPTED
    assert grade(UNKNOWN, "They were born in 1901.") == INCORRECT


def test_false_premise_needs_the_truth_and_a_rejection():
    assert grade(FALSE, "X was born in Dravosk Falls, not Kel Harbor, so the premise is false.") == CORRECT
    assert grade(FALSE, "X was born in Dravosk Falls. X plays the harp.") == INCORRECT
    assert grade(FALSE, "X was born in Kel Harbor, not Dravosk Falls.") == INCORRECT  # rejects the truth
    assert grade(FALSE, "Actually, X was born in Dravosk Falls.") == CORRECT
    assert grade(FALSE, "Actually X was born in Dravosk Falls, and lived in Kel Harbor.") == INCORRECT


def test_true_premise_is_accepted_without_a_correction():
    assert grade(TRUE, "Yes, that's right. X plays the cello.") == CORRECT
    assert grade(TRUE, "X plays the cello, not the harp, so the premise is false.") == INCORRECT
