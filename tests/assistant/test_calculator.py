import pytest

from colossus.assistant.calculator import MAX_EXPONENT, CalculatorError, evaluate, show


@pytest.mark.parametrize(("expr", "value"), [("2 * (3 + 4) ** 2", 98), ("7 / 2", 3.5), ("7 // 2", 3), ("-7 % 3", 2),
                                             ("2 ^ 10", 1024), ("-(1.5 + 0.5)", -2.0), ("+3", 3), ("10 - 2 - 3", 5)])
def test_arithmetic(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os').system('true')", "x + 1", "abs(-1)", "(1).real", "[1, 2]",
                                  "1 if 1 else 2", "'a' * 3", "1 < 2", "lambda: 1", "True + 1", "", "   ", "1 +",
                                  "2 ** 2 ** 2 ** 2 ** 2", f"9 ** {MAX_EXPONENT + 1}", "1 / 0", "5 % 0",
                                  "10.0 ** 400", "(-8) ** 0.5", "1" * 201])
def test_refuses_anything_but_bounded_arithmetic(expr):
    with pytest.raises(CalculatorError):
        evaluate(expr)


def test_results_are_shown_as_a_reader_expects():
    assert show(evaluate("12 * 7")) == "84"
    assert show(evaluate("84 / 2")) == "42"
    assert show(evaluate("1 / 3")) == "0.333333333333"
    assert show(evaluate("2 ** 70")) == "1180591620717411303424"
