"""Problem templates of ``code-v1``: seeded programming tasks with a reference solution.

Each template draws its parameters (which characters to count, a threshold,
a separator, ...) from the task's random generator and returns a
:class:`Problem`: the function's name and signature, what it must do, the
source of a reference solution, and argument lists for the visible examples
and the hidden tests. Expected outputs are computed by running the reference
solution on the host (our own code, so no sandbox is needed) and must be
JSON values (no floats, no tuples): they are compared with the candidate's
outputs after a JSON round-trip.

The heldout split draws from :data:`HELDOUT` — templates never seen in the
train and test splits — so held-out success measures generalisation to new
problems, not to new parameters of known ones.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from palaestra.env._core import Difficulty

Args = list[Any]

_WORDS = [
    "apple",
    "banana",
    "cherry",
    "delta",
    "echo",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lemon",
    "mango",
    "night",
    "ocean",
    "pepper",
    "quartz",
    "river",
    "stone",
    "tiger",
    "umbra",
    "violet",
    "willow",
    "xenon",
    "yarrow",
    "zebra",
    "art",
    "bee",
    "cat",
    "dog",
    "elk",
    "fig",
    "gnu",
    "hat",
    "ink",
    "jam",
]


@dataclass(frozen=True)
class Problem:
    """One concrete task: define ``name`` so that it maps each argument list like ``reference``."""

    name: str
    #: Parameters and return type, e.g. ``"(text: str) -> int"``.
    signature: str
    #: What the function returns, as the end of "Write ... that ...".
    description: str
    #: Source of a correct solution (what the expert defines).
    reference: str
    visible: list[Args]
    hidden: list[Args]


#: A template: (rng, number of hidden tests) -> problem.
Template = Callable[[random.Random, int], Problem]


def _text(rng: random.Random, lo: int = 1, hi: int = 5, caps: bool = False) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    if caps:
        words = [w.capitalize() if rng.random() < 0.3 else w for w in words]
    return " ".join(words)


def _nums(rng: random.Random, lo: int = 0, hi: int = 8, span: int = 20) -> list[int]:
    return [rng.randint(-span, span) for _ in range(rng.randint(lo, hi))]


def _cases(n: int, gen: Callable[[], Args], edge: list[Args] | None = None) -> list[Args]:
    cases = list(edge or [])[:n]
    while len(cases) < n:
        cases.append(gen())
    return cases


# ---- easy ----------------------------------------------------------------------------


def _count_chars(rng: random.Random, n: int) -> Problem:
    kind, what, test = rng.choice(
        [
            ("vowels", "vowels (a, e, i, o, u, in either case)", "ch.lower() in 'aeiou'"),
            ("digits", "decimal digits", "ch.isdigit()"),
            ("upper", "uppercase letters", "ch.isupper()"),
        ]
    )

    def gen() -> Args:
        chars = string.ascii_letters + string.digits + " "
        return ["".join(rng.choice(chars) for _ in range(rng.randint(3, 16)))]

    name = f"count_{kind}"
    ref = f"def {name}(text):\n    return sum(1 for ch in text if {test})\n"
    return Problem(
        name,
        "(text: str) -> int",
        f"returns how many characters of `text` are {what}",
        ref,
        [gen() for _ in range(3)],
        _cases(n, gen, [[""]]),
    )


def _filter_numbers(rng: random.Random, n: int) -> Problem:
    k = rng.randint(2, 5)
    kind, what, test = rng.choice(
        [
            ("above", f"greater than {k}", f"x > {k}"),
            ("below", f"less than {k}", f"x < {k}"),
            ("multiples", f"divisible by {k}", f"x % {k} == 0"),
        ]
    )
    name = f"keep_{kind}"
    ref = f"def {name}(nums):\n    return [x for x in nums if {test}]\n"
    return Problem(
        name,
        "(nums: list[int]) -> list[int]",
        f"returns the numbers of `nums` that are {what}, in their original order",
        ref,
        [[_nums(rng, 3, 6)] for _ in range(3)],
        _cases(n, lambda: [_nums(rng)], [[[]]]),
    )


def _reverse_words(rng: random.Random, n: int) -> Problem:
    sep = rng.choice(["-", "_", " ", "+"])
    mode = rng.choice(["order", "letters"])
    if mode == "order":
        name, what = "reverse_words", "the words of `text` (split on spaces) in reverse order"
        body = f"return {sep!r}.join(reversed(text.split()))"
    else:
        name, what = "mirror_words", "each word of `text` (split on spaces) spelled backwards"
        body = f"return {sep!r}.join(w[::-1] for w in text.split())"
    return Problem(
        name,
        "(text: str) -> str",
        f"returns {what}, joined by {sep!r}",
        f"def {name}(text):\n    {body}\n",
        [[_text(rng, 2, 4)] for _ in range(3)],
        _cases(n, lambda: [_text(rng, 1, 6)], [[""]]),
    )


def _sum_of(rng: random.Random, n: int) -> Problem:
    name, what, expr = rng.choice(
        [
            ("sum_squares", "the squares of the numbers", "x * x for x in nums"),
            ("sum_even", "the even numbers", "x for x in nums if x % 2 == 0"),
            ("sum_odd", "the odd numbers", "x for x in nums if x % 2 != 0"),
            ("sum_abs", "the absolute values of the numbers", "abs(x) for x in nums"),
        ]
    )
    return Problem(
        name,
        "(nums: list[int]) -> int",
        f"returns the sum of {what} in `nums` (0 for an empty list)",
        f"def {name}(nums):\n    return sum({expr})\n",
        [[_nums(rng, 2, 5, 9)] for _ in range(3)],
        _cases(n, lambda: [_nums(rng, 0, 8, 9)], [[[]]]),
    )


def _affine(rng: random.Random, n: int) -> Problem:
    a, b = rng.randint(2, 5), rng.randint(-9, 9)
    name = "scale_shift"
    return Problem(
        name,
        "(nums: list[int]) -> list[int]",
        f"returns a list with every number of `nums` multiplied by {a} and then increased by {b}",
        f"def {name}(nums):\n    return [x * {a} + {b} for x in nums]\n",
        [[_nums(rng, 2, 4, 9)] for _ in range(3)],
        _cases(n, lambda: [_nums(rng, 0, 6, 9)], [[[]]]),
    )


# ---- medium --------------------------------------------------------------------------


def _word_counts(rng: random.Random, n: int) -> Problem:
    k = rng.randint(1, 4)
    name = "word_counts"
    ref = (
        f"def {name}(text):\n"
        "    counts = {}\n"
        "    for w in text.lower().split():\n"
        f"        if len(w) >= {k}:\n"
        "            counts[w] = counts.get(w, 0) + 1\n"
        "    return counts\n"
    )
    return Problem(
        name,
        "(text: str) -> dict[str, int]",
        "returns a dict mapping each lower-cased word of `text` (split on spaces) with at "
        f"least {k} letters to the number of times it occurs",
        ref,
        [[_text(rng, 3, 6, caps=True)] for _ in range(3)],
        _cases(n, lambda: [_text(rng, 1, 9, caps=True)], [[""]]),
    )


def _group_words(rng: random.Random, n: int) -> Problem:
    kind, what, key = rng.choice(
        [
            ("initial", "first letter", "w[0]"),
            ("length", "length written as a string", "str(len(w))"),
        ]
    )
    name = f"group_by_{kind}"
    ref = (
        f"def {name}(words):\n"
        "    groups = {}\n"
        "    for w in words:\n"
        f"        groups.setdefault({key}, []).append(w)\n"
        "    return groups\n"
    )

    def gen() -> Args:
        return [_text(rng, 0, 7).split()]

    return Problem(
        name,
        "(words: list[str]) -> dict[str, list[str]]",
        f"returns a dict mapping each word's {what} to the list of the words that have it, "
        "in input order",
        ref,
        [[_text(rng, 3, 5).split()] for _ in range(3)],
        _cases(n, gen, [[[]]]),
    )


def _run_length(rng: random.Random, n: int) -> Problem:
    count_first = rng.random() < 0.5
    name = "run_length"
    piece = "str(count) + ch" if count_first else "ch + str(count)"
    example = "'3a1b'" if count_first else "'a3b1'"
    ref = (
        f"def {name}(text):\n"
        "    out = []\n"
        "    i = 0\n"
        "    while i < len(text):\n"
        "        ch, count = text[i], 0\n"
        "        while i < len(text) and text[i] == ch:\n"
        "            i += 1\n"
        "            count += 1\n"
        f"        out.append({piece})\n"
        "    return ''.join(out)\n"
    )

    def gen() -> Args:
        letters = rng.choice(["ab", "abc", "xyz", "mn"])
        return ["".join(rng.choice(letters) * rng.randint(1, 4) for _ in range(rng.randint(1, 5)))]

    return Problem(
        name,
        "(text: str) -> str",
        f"returns the run-length encoding of `text`: each run of a repeated character "
        f"becomes {'the count then the character' if count_first else 'the character then the count'}"
        f" (so 'aaab' gives {example})",
        ref,
        [gen() for _ in range(3)],
        _cases(n, gen, [[""]]),
    )


def _running(rng: random.Random, n: int) -> Problem:
    kind, init, upd = rng.choice(
        [
            ("sum", "0", "acc + x"),
            ("max", "None", "x if acc is None else max(acc, x)"),
            ("min", "None", "x if acc is None else min(acc, x)"),
        ]
    )
    name = f"running_{kind}"
    ref = (
        f"def {name}(nums):\n"
        f"    out, acc = [], {init}\n"
        "    for x in nums:\n"
        f"        acc = {upd}\n"
        "        out.append(acc)\n"
        "    return out\n"
    )
    return Problem(
        name,
        "(nums: list[int]) -> list[int]",
        f"returns the running {kind} of `nums`: element i is the {kind} of nums[0..i]",
        ref,
        [[_nums(rng, 3, 5, 9)] for _ in range(3)],
        _cases(n, lambda: [_nums(rng, 0, 8, 9)], [[[]]]),
    )


def _rotate(rng: random.Random, n: int) -> Problem:
    left = rng.random() < 0.5
    name = f"rotate_{'left' if left else 'right'}"
    shift = "k % len(nums)" if left else "-(k % len(nums))"
    ref = (
        f"def {name}(nums, k):\n"
        "    if not nums:\n"
        "        return []\n"
        f"    s = {shift}\n"
        "    return nums[s:] + nums[:s]\n"
    )

    def gen() -> Args:
        return [_nums(rng, 0, 7, 9), rng.randint(0, 9)]

    return Problem(
        name,
        "(nums: list[int], k: int) -> list[int]",
        f"returns `nums` rotated {'left' if left else 'right'} by `k` positions "
        "(k may exceed the length; an empty list stays empty)",
        ref,
        [[_nums(rng, 3, 5, 9), rng.randint(1, 3)] for _ in range(3)],
        _cases(n, gen, [[[], 3]]),
    )


# ---- hard ----------------------------------------------------------------------------


def _balanced(rng: random.Random, n: int) -> Problem:
    pairs = rng.choice(["()[]", "(){}", "()[]{}", "[]<>"])
    opens, closes = pairs[0::2], pairs[1::2]
    name = "is_balanced"
    ref = (
        f"def {name}(text):\n"
        f"    match = dict(zip({closes!r}, {opens!r}))\n"
        "    stack = []\n"
        "    for ch in text:\n"
        f"        if ch in {opens!r}:\n"
        "            stack.append(ch)\n"
        "        elif ch in match:\n"
        "            if not stack or stack.pop() != match[ch]:\n"
        "                return False\n"
        "    return not stack\n"
    )

    def balanced(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(["", "a", "xy"])
        i = rng.randrange(len(opens))
        return opens[i] + balanced(depth - 1) + closes[i] + balanced(depth - 1)

    def gen() -> Args:
        s = balanced(3)
        if rng.random() < 0.5 and s:
            j = rng.randrange(len(s))
            s = s[:j] + rng.choice(pairs) + s[j + 1 :]
        return [s]

    return Problem(
        name,
        "(text: str) -> bool",
        f"returns True when the brackets {' '.join(opens[i] + closes[i] for i in range(len(opens)))}"
        " in `text` are balanced and properly nested (other characters are ignored), "
        "else False",
        ref,
        [[opens[0] + opens[-1] + closes[-1] + closes[0]], [opens[0] + closes[-1]]],
        _cases(n, gen, [[""], [closes[0] + opens[0]]]),
    )


def _merge_intervals(rng: random.Random, n: int) -> Problem:
    touching = rng.random() < 0.5
    name = "merge_intervals"
    cmp = "<=" if touching else "<"
    ref = (
        f"def {name}(intervals):\n"
        "    out = []\n"
        "    for start, end in sorted(intervals):\n"
        f"        if out and start {cmp} out[-1][1]:\n"
        "            out[-1][1] = max(out[-1][1], end)\n"
        "        else:\n"
        "            out.append([start, end])\n"
        "    return out\n"
    )

    def gen() -> Args:
        out: list[list[int]] = []
        for _ in range(rng.randint(0, 6)):
            a = rng.randint(0, 20)
            out.append([a, a + rng.randint(0, 5)])
        return [out]

    rule = (
        "touching intervals such as [1, 3] and [3, 5] count as overlapping"
        if touching
        else ("intervals that only touch, such as [1, 3] and [3, 5], stay separate")
    )
    return Problem(
        name,
        "(intervals: list[list[int]]) -> list[list[int]]",
        "returns the intervals (each [start, end]) with overlapping ones merged, sorted by "
        f"start; {rule}",
        ref,
        [[[[1, 3], [3, 5], [8, 9]]], [[[6, 8], [1, 4], [2, 3]]]],
        _cases(n, gen, [[[]]]),
    )


def _longest_increasing(rng: random.Random, n: int) -> Problem:
    strict = rng.random() < 0.5
    name = "longest_increasing"
    cmp = "<" if strict else "<="
    ref = (
        f"def {name}(nums):\n"
        "    best = []\n"
        "    for i, x in enumerate(nums):\n"
        f"        best.append(1 + max([best[j] for j in range(i) if nums[j] {cmp} x], default=0))\n"
        "    return max(best, default=0)\n"
    )
    kind = "strictly increasing" if strict else "non-decreasing"
    return Problem(
        name,
        "(nums: list[int]) -> int",
        f"returns the length of the longest {kind} subsequence of `nums` (not necessarily "
        "contiguous; 0 for an empty list)",
        ref,
        [[[3, 1, 2, 2, 5]], [[5, 4, 3]]],
        _cases(n, lambda: [_nums(rng, 0, 9, 6)], [[[]]]),
    )


def _top_words(rng: random.Random, n: int) -> Problem:
    name = "top_words"
    ref = (
        f"def {name}(text, k):\n"
        "    counts = {}\n"
        "    for w in text.split():\n"
        "        counts[w] = counts.get(w, 0) + 1\n"
        "    return sorted(counts, key=lambda w: (-counts[w], w))[:k]\n"
    )
    pool = rng.sample(_WORDS, 5)

    def gen() -> Args:
        return [" ".join(rng.choice(pool) for _ in range(rng.randint(0, 10))), rng.randint(1, 3)]

    return Problem(
        name,
        "(text: str, k: int) -> list[str]",
        "returns the `k` most frequent words of `text` (split on spaces), most frequent "
        "first, ties broken alphabetically",
        ref,
        [[f"{pool[0]} {pool[1]} {pool[0]}", 1], [f"{pool[2]} {pool[1]} {pool[2]} {pool[1]}", 2]],
        _cases(n, gen),
    )


# ---- heldout -------------------------------------------------------------------------


def _caesar(rng: random.Random, n: int) -> Problem:
    k = rng.randint(1, 25)
    name = "caesar"
    ref = (
        f"def {name}(text):\n"
        "    return ''.join(\n"
        f"        chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c for c in text\n"
        "    )\n"
    )
    return Problem(
        name,
        "(text: str) -> str",
        f"returns `text` with every lowercase letter a-z shifted {k} places forward in the "
        "alphabet, wrapping from z to a; other characters stay as they are",
        ref,
        [[_text(rng, 1, 3, caps=True)] for _ in range(3)],
        _cases(n, lambda: [_text(rng, 1, 4, caps=True)], [[""]]),
    )


def _long_words(rng: random.Random, n: int) -> Problem:
    k = rng.randint(3, 6)
    name = "count_long_words"
    return Problem(
        name,
        "(text: str) -> int",
        f"returns how many words of `text` (split on spaces) have more than {k} letters",
        f"def {name}(text):\n    return sum(1 for w in text.split() if len(w) > {k})\n",
        [[_text(rng, 2, 5)] for _ in range(3)],
        _cases(n, lambda: [_text(rng, 0, 8)], [[""]]),
    )


def _invert(rng: random.Random, n: int) -> Problem:
    name = "invert_groups"
    ref = (
        f"def {name}(mapping):\n"
        "    out = {}\n"
        "    for key in sorted(mapping):\n"
        "        out.setdefault(mapping[key], []).append(key)\n"
        "    return out\n"
    )
    groups = rng.sample(["red", "green", "blue", "gold", "grey"], 3)

    def gen() -> Args:
        keys = rng.sample(_WORDS, rng.randint(0, 6))
        return [{k: rng.choice(groups) for k in keys}]

    return Problem(
        name,
        "(mapping: dict[str, str]) -> dict[str, list[str]]",
        "returns a dict mapping each value of `mapping` to the alphabetically sorted list of "
        "the keys that have that value",
        ref,
        [gen() for _ in range(3)],
        _cases(n, gen, [[{}]]),
    )


def _pair_diffs(rng: random.Random, n: int) -> Problem:
    name = "pair_differences"
    absolute = rng.random() < 0.5
    expr = "abs(b - a)" if absolute else "b - a"
    return Problem(
        name,
        "(nums: list[int]) -> list[int]",
        f"returns the {'absolute ' if absolute else ''}differences between consecutive "
        "numbers of `nums` (nums[i+1] - nums[i]"
        + (", made non-negative" if absolute else "")
        + "); one element fewer than `nums`, empty for fewer than two numbers",
        f"def {name}(nums):\n    return [{expr} for a, b in zip(nums, nums[1:])]\n",
        [[_nums(rng, 3, 5, 9)] for _ in range(3)],
        _cases(n, lambda: [_nums(rng, 0, 7, 9)], [[[]], [[4]]]),
    )


def _edit_distance(rng: random.Random, n: int) -> Problem:
    name = "edit_distance"
    ref = (
        f"def {name}(a, b):\n"
        "    prev = list(range(len(b) + 1))\n"
        "    for i, ca in enumerate(a, 1):\n"
        "        cur = [i]\n"
        "        for j, cb in enumerate(b, 1):\n"
        "            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))\n"
        "        prev = cur\n"
        "    return prev[-1]\n"
    )

    def gen() -> Args:
        return [rng.choice(_WORDS), rng.choice(_WORDS)]

    return Problem(
        name,
        "(a: str, b: str) -> int",
        "returns the Levenshtein distance between `a` and `b`: the fewest single-character "
        "insertions, deletions and substitutions that turn `a` into `b`",
        ref,
        [["kitten", "sitting"], ["flaw", "lawn"]],
        _cases(n, gen, [["", "abc"]]),
    )


def _min_coins(rng: random.Random, n: int) -> Problem:
    name = "min_coins"
    ref = (
        f"def {name}(coins, amount):\n"
        "    best = [0] + [None] * amount\n"
        "    for v in range(1, amount + 1):\n"
        "        options = [best[v - c] for c in coins if c <= v and best[v - c] is not None]\n"
        "        best[v] = min(options) + 1 if options else None\n"
        "    return -1 if best[amount] is None else best[amount]\n"
    )

    def gen() -> Args:
        coins = sorted(rng.sample(range(2, 12), rng.randint(1, 3)))
        return [coins, rng.randint(0, 30)]

    return Problem(
        name,
        "(coins: list[int], amount: int) -> int",
        "returns the fewest coins (each value in `coins` usable any number of times) that add "
        "up to exactly `amount`, or -1 when no combination does",
        ref,
        [[[1, 2, 5], 11], [[2], 3]],
        _cases(n, gen, [[[3], 0]]),
    )


TEMPLATES: dict[Difficulty, tuple[Template, ...]] = {
    "easy": (_count_chars, _filter_numbers, _reverse_words, _sum_of, _affine),
    "medium": (_word_counts, _group_words, _run_length, _running, _rotate),
    "hard": (_balanced, _merge_intervals, _longest_increasing, _top_words),
}
HELDOUT: dict[Difficulty, tuple[Template, ...]] = {
    "easy": (_caesar, _long_words),
    "medium": (_invert, _pair_diffs),
    "hard": (_edit_distance, _min_coins),
}
N_HIDDEN: dict[Difficulty, int] = {"easy": 6, "medium": 8, "hard": 10}
