"""The calculator tool: arithmetic on numbers, parsed with `ast` and evaluated node by node. No `eval`, no
names, no calls, no attributes: anything but numbers, + - * / // % ** and parentheses is refused.

    evaluate("2 * (3 + 4) ** 2")    # -> 98
    evaluate("__import__('os')")    # CalculatorError: only numbers and + - * / // % ** are allowed

Results are bounded: an exponent above MAX_EXPONENT or a number beyond MAX_DIGITS digits is refused rather
than computed (9 ** 9 ** 9 would take the process's memory)."""

from __future__ import annotations

import ast
import math
import operator

MAX_EXPRESSION = 200  # characters
MAX_EXPONENT = 1000
MAX_DIGITS = 100

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    pass


def evaluate(expression: str) -> int | float:
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("give an arithmetic expression, such as 2 * (3 + 4)")
    if len(expression) > MAX_EXPRESSION:
        raise CalculatorError(f"the expression has more than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"{expression!r} is not an arithmetic expression") from None
    return _value(tree.body)


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"an exponent above {MAX_EXPONENT} is too large")
        try:
            out = BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("the result is too large") from None
        if isinstance(out, complex):
            raise CalculatorError("the result is not a real number")
        if isinstance(out, int) and abs(out) >= 10**MAX_DIGITS or isinstance(out, float) and not math.isfinite(out):
            raise CalculatorError("the result is too large")
        return out
    raise CalculatorError("only numbers, parentheses and + - * / // % ** are allowed")


def show(value: int | float) -> str:
    """The result as the model reads it: integers exactly, other numbers to 12 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value) if isinstance(value, int) else f"{value:.12g}"
