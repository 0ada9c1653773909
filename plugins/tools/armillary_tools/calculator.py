"""Arithmetic without eval/exec: the expression is parsed with `ast` and only numbers,
arithmetic operators, parentheses and a short list of math functions are evaluated."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from armillary import ToolError, tool

MAX_EXPRESSION = 500
MAX_EXPONENT = 10_000
MAX_DIGITS = 4_300  # Python's own int/str conversion limit

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max,
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "log10": math.log10,
    "log2": math.log2, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "asin": math.asin, "acos": math.acos, "atan": math.atan, "floor": math.floor,
    "ceil": math.ceil, "factorial": math.factorial,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculatorError(ToolError):
    code = "calculator_error"
    status_code = 422


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise CalculatorError("result is too large")
    return value


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is larger than {MAX_EXPONENT}")
        return _check_size(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords):
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and args and args[0] > 1000:
            raise CalculatorError("factorial argument is larger than 1000")
        return _check_size(_FUNCTIONS[node.func.id](*args))
    raise CalculatorError(f"unsupported expression: {ast.unparse(node)!r}")


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression; raise `CalculatorError` for anything else."""
    if len(expression) > MAX_EXPRESSION:
        raise CalculatorError(f"expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg}") from None
    try:
        result = _eval(tree)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except (ValueError, OverflowError, TypeError) as exc:
        raise CalculatorError(f"cannot compute: {exc}") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise CalculatorError("the result is not a finite number (it overflowed, or is "
                              "undefined)")
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result  # type: ignore[no-any-return]


@tool(timeout=5)
def calculator(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression: + - * / // % ** (or ^), parentheses, pi, e, and
    sqrt, exp, log, log10, log2, sin, cos, tan, asin, acos, atan, floor, ceil, abs, round,
    min, max, factorial. Example: "sqrt(2) * (3 + 4) ^ 2"."""
    return {"expression": expression, "result": evaluate(expression)}
