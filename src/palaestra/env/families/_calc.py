"""A safe arithmetic evaluator for the ``calculate[...]`` tool of ToolQA.

ToolQA ("ToolQA: A Dataset for LLM Question Answering with External Tools",
Zhuang et al. 2023) gives agents a calculator; agents send it arbitrary text,
so it must never execute code. :func:`evaluate` parses the expression with
:mod:`ast` and walks the tree itself, accepting only

- int and float literals (no bools, strings, complex numbers),
- the binary operators ``+ - * / // % **`` and unary ``+ -``, parentheses,
- calls to ``min``, ``max`` (two or more arguments), ``abs`` (one) and
  ``round`` (one or two), with positional arguments only.

Everything else (names, attributes, subscripts, comprehensions, other calls)
is refused. Sizes are capped so no input can exhaust time or memory: the
expression length, each literal and intermediate result (:data:`MAX_MAGNITUDE`),
and exponents (checked *before* computing the power). Every failure is a
:class:`CalcError` whose message says what was wrong and how to fix it,
ready to show the agent. ``eval`` is never used.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable

__all__ = ["MAX_EXPRESSION_LENGTH", "MAX_MAGNITUDE", "CalcError", "evaluate", "format_number"]

MAX_EXPRESSION_LENGTH = 200
#: Largest absolute value of any literal or intermediate result. Beyond 2**53
#: floats stop representing integers exactly, so 1e15 keeps results honest.
MAX_MAGNITUDE = 10**15
_MAX_EXPONENT = 64
_MAX_ROUND_DIGITS = 15

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}

_HINTS: dict[type[ast.AST], str] = {
    ast.BitXor: "'^' is not a power operator here: write 2 ** 3 for powers",
    ast.Tuple: "commas are not allowed: write 1200, not 1,200 (no thousands separators)",
    ast.Name: "names and variables are not allowed: use numbers only",
    ast.Attribute: "attributes are not allowed: use numbers only",
    ast.Compare: "comparisons are not supported: use min(...) or max(...)",
}

_ALLOWED = "numbers, + - * / // % **, parentheses, min, max, abs, round"


class CalcError(ValueError):
    """The expression was refused or could not be computed; the message says why."""


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression safely; raise :class:`CalcError` on anything else."""
    text = expression.strip()
    if not text:
        raise CalcError("empty expression: write something like 12 * (3 + 4)")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CalcError(
            f"expression too long ({len(text)} characters; at most {MAX_EXPRESSION_LENGTH})"
        )
    # Agents often write × and ÷; accepting them costs nothing and is unambiguous.
    text = text.replace("×", "*").replace("÷", "/")
    try:
        # String literals with bad escapes ("'\\d'") warn while parsing; they are refused anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise CalcError(
            f"cannot parse {text!r} as arithmetic ({_short(e)}); allowed: {_ALLOWED}"
        ) from e
    try:
        return _eval(tree.body)
    except ZeroDivisionError as e:
        raise CalcError("division by zero: check the divisor") from e
    except (OverflowError, RecursionError) as e:
        raise CalcError(f"result too large (limit {MAX_MAGNITUDE:.0e})") from e


def format_number(value: Number) -> str:
    """Show a result plainly: integral values without a decimal point, others to 10 digits."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.10g}"


def _short(e: Exception) -> str:
    msg = e.msg if isinstance(e, SyntaxError) else str(e)
    return msg.split("\n", 1)[0] or type(e).__name__


def _check(value: object) -> Number:
    if isinstance(value, complex):
        raise CalcError("the result is not a real number (e.g. a fractional power of a negative)")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CalcError(f"unsupported value {value!r}; allowed: {_ALLOWED}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalcError(f"result too large or undefined (limit {MAX_MAGNITUDE:.0e})")
    if abs(value) > MAX_MAGNITUDE:
        raise CalcError(f"number too large (limit {MAX_MAGNITUDE:.0e})")
    return value


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalcError(f"only numbers are allowed, not {value!r}")
        return _check(value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _eval(node.operand)
        return _check(-operand if isinstance(node.op, ast.USub) else operand)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalcError(_hint(node.op))
        return _check(op(left, right))
    if isinstance(node, ast.Call):
        return _call(node)
    raise CalcError(_hint(node))


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > _MAX_EXPONENT:
        raise CalcError(f"exponent {format_number(exponent)} too large (at most {_MAX_EXPONENT})")
    # Bound the size before computing: |base| ** exponent <= MAX_MAGNITUDE.
    if exponent > 0 and abs(base) > 1 and exponent * math.log10(abs(base)) > 15:
        raise CalcError(f"result too large (limit {MAX_MAGNITUDE:.0e})")
    return _check(base**exponent)


def _call(node: ast.Call) -> Number:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in ("min", "max", "abs", "round"):
        shown = name if name is not None else ast.unparse(node.func)[:30]
        raise CalcError(f"function {shown!r} is not allowed; only min, max, abs and round")
    if node.keywords:
        raise CalcError(f"{name}() takes positional arguments only")
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise CalcError(f"{name}() does not take *arguments")
    args = [_eval(a) for a in node.args]
    if name in ("min", "max"):
        if len(args) < 2:
            raise CalcError(f"{name}() needs at least two numbers, e.g. {name}(3, 7)")
        return min(args) if name == "min" else max(args)
    if name == "abs":
        if len(args) != 1:
            raise CalcError("abs() takes exactly one number")
        return _check(abs(args[0]))
    if len(args) not in (1, 2):
        raise CalcError("round() takes a number and optionally a count of digits")
    if len(args) == 1:
        return _check(round(args[0]))
    digits = args[1]
    if not isinstance(digits, int) or abs(digits) > _MAX_ROUND_DIGITS:
        raise CalcError("round()'s digits must be a whole number between -15 and 15")
    return _check(round(args[0], digits))


def _hint(node: ast.AST) -> str:
    for kind, hint in _HINTS.items():
        if isinstance(node, kind):
            return hint
    return f"{type(node).__name__} is not allowed; allowed: {_ALLOWED}"
