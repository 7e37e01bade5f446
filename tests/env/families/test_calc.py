"""Tests of the safe arithmetic evaluator behind ToolQA's ``calculate[...]`` tool."""

from __future__ import annotations

import builtins
import random

import pytest

from palaestra.env.families._calc import (
    MAX_EXPRESSION_LENGTH,
    MAX_MAGNITUDE,
    CalcError,
    evaluate,
    format_number,
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2", 3),
        ("1987 - 1954", 33),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -2", 0.25),
        ("-3 + +5", 2),
        ("--4", 4),
        ("1.5 * 4", 6.0),
        ("1_000 + 1", 1001),
        ("min(4, 2, 9)", 2),
        ("max(4, 2, 9)", 9),
        ("abs(3 - 10)", 7),
        ("round(3.14159, 2)", 3.14),
        ("round(2.6)", 3),
        ("round(1234, -2)", 1200),
        ("max(1, 2) + min(3, 4) * abs(-2)", 8),
        ("3 × 4 ÷ 2", 6.0),
        ("  12  ", 12),
    ],
)
def test_evaluates_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("x + 1", "names and variables"),
        ("__import__('os').system('echo hi')", "not allowed"),
        ("(1).real", "attributes are not allowed"),
        ("open('/etc/passwd')", "'open' is not allowed"),
        ("print(1)", "'print' is not allowed"),
        ("eval('1+1')", "'eval' is not allowed"),
        ("(lambda: 1)()", "not allowed"),
        ("[1, 2][0]", "not allowed"),
        ("[x for x in (1, 2)]", "not allowed"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("1j * 2", "only numbers"),
        ("2 ^ 3", "write 2 ** 3"),
        ("1,200 + 5", "no thousands separators"),
        ("1 < 2", "comparisons"),
        ("1 << 4", "not allowed"),
        ("1 if 1 else 2", "not allowed"),
        ("min(3)", "at least two numbers"),
        ("abs(1, 2)", "exactly one"),
        ("round(1.5, 2.5)", "whole number"),
        ("round(1, 99)", "whole number"),
        ("max(a=1, b=2)", "positional"),
        ("max(*(1, 2))", "does not take *arguments"),
        ("math.sqrt(4)", "not allowed"),
        ("", "empty expression"),
        ("1 +", "cannot parse"),
        ("(1 + 2", "cannot parse"),
    ],
)
def test_refuses_everything_else_with_a_helpful_message(expression: str, fragment: str) -> None:
    with pytest.raises(CalcError) as e:
        evaluate(expression)
    assert fragment in str(e.value)


@pytest.mark.parametrize("expression", ["1 / 0", "5 // 0", "5 % 0", "0 ** -1", "1.5 / (2 - 2)"])
def test_division_by_zero_is_a_message(expression: str) -> None:
    with pytest.raises(CalcError, match="division by zero"):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "10 ** 20",
        "9 ** 9 ** 9",
        "2 ** 1000",
        "(10 ** 8) * (10 ** 8)",
        "1e999",
        "1e300 * 1e300",
        "9" * 30,
        "0.001 ** -64",
        "2 ** 65",
    ],
)
def test_sizes_are_capped(expression: str) -> None:
    with pytest.raises(CalcError, match="too large"):
        evaluate(expression)


def test_large_but_allowed_results_pass() -> None:
    assert evaluate("10 ** 15") == MAX_MAGNITUDE
    assert evaluate("2 ** 49") == 2**49


def test_expression_length_is_capped() -> None:
    ok = "+".join(["1"] * (MAX_EXPRESSION_LENGTH // 2))
    assert evaluate(ok) == MAX_EXPRESSION_LENGTH // 2
    with pytest.raises(CalcError, match="too long"):
        evaluate("1+" * MAX_EXPRESSION_LENGTH + "1")


def test_deepest_nesting_the_length_cap_allows_is_fine() -> None:
    # The length cap keeps nesting far below both the parser's and the recursion limit.
    assert evaluate("(" * 99 + "1" + ")" * 99) == 1
    assert evaluate("-" * 199 + "1") == -1


def test_complex_results_are_refused() -> None:
    with pytest.raises(CalcError, match="not a real number"):
        evaluate("(-8) ** 0.5")


def test_never_calls_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object, **__: object) -> None:
        raise AssertionError("eval/exec must never be used")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    assert evaluate("2 * (3 + 4)") == 14


def test_random_garbage_only_ever_raises_calc_error() -> None:
    rng = random.Random("calc-fuzz")
    alphabet = "0123456789+-*/%().,[]{}<>=!^&|~ abcxyz_'\"\\:;@#$\n\t×÷e"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            value = evaluate(text)
        except CalcError:
            continue
        assert isinstance(value, int | float) and abs(value) <= MAX_MAGNITUDE


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (33, "33"),
        (6.0, "6"),
        (3.5, "3.5"),
        (1 / 3, "0.3333333333"),
        (-2.0, "-2"),
        (1e14, "100000000000000"),
    ],
)
def test_format_number(value: float, shown: str) -> None:
    assert format_number(value) == shown
