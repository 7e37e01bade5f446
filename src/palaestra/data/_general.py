"""A small general-chat set, generated deterministically, for AgentTuning's hybrid mixing.

AgentTuning (Zeng et al., "AgentTuning: Enabling Generalized Agent Abilities for
LLMs", 2023) mixes agent trajectories with general instruction data so a model
keeps its general ability. Palaestra downloads nothing, so it ships a tiny
stand-in: short question/answer conversations about arithmetic, word
definitions, rewriting and counting, produced by :func:`generate` and stored as
``general/chat.jsonl`` (package data). Regenerate with
``python -m palaestra.data._general``; a test checks the file matches. Users with
real chat data pass a JSONL file or a ``datasets`` folder instead.
"""

from __future__ import annotations

import json
import operator
import random
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from palaestra.data._common import Message, msg

_DEFINITIONS = {
    "river": "a large natural stream of water flowing to the sea, a lake or another river",
    "kettle": "a container with a lid, spout and handle, used for boiling water",
    "ladder": "a set of steps between two uprights, used for climbing up or down",
    "harbour": "a sheltered place on a coast where ships can stay safely",
    "compass": "an instrument whose needle points north, used to find directions",
    "orchard": "a piece of land planted with fruit trees",
    "glacier": "a slowly moving mass of ice formed from compacted snow",
    "recipe": "a list of ingredients and steps for preparing a dish",
    "library": "a building or room holding books that people can read or borrow",
    "volcano": "a mountain with a vent through which lava and gas erupt",
    "umbrella": "a folding canopy on a stick that protects from rain or sun",
    "bridge": "a structure that carries a road or path across an obstacle",
    "candle": "a stick of wax with a wick that gives light when burning",
    "desert": "a dry region that receives very little rain",
    "magnet": "an object that attracts iron and produces a magnetic field",
    "thermometer": "an instrument that measures temperature",
    "calendar": "a chart of the days, weeks and months of a year",
    "island": "a piece of land surrounded by water",
    "telescope": "an instrument that makes distant objects look nearer",
    "battery": "a device that stores chemical energy and releases it as electricity",
}
_SENTENCES = [
    "the cat sat on the warm mat",
    "we walked to the market in the morning",
    "she reads a new book every week",
    "the train leaves at seven",
    "birds sing before the sun rises",
    "he planted tomatoes in the garden",
    "the river flows past the old mill",
    "they painted the fence bright green",
]
_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


def _one(rng: random.Random, i: int) -> list[Message]:
    kind = i % 4
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice(sorted(_OPS))
        q, ans = f"What is {a} {op} {b}?", f"{a} {op} {b} = {_OPS[op](a, b)}."
    elif kind == 1:
        word = rng.choice(sorted(_DEFINITIONS))
        q, ans = f"What does the word '{word}' mean?", f"A {word} is {_DEFINITIONS[word]}."
    elif kind == 2:
        s = rng.choice(_SENTENCES)
        style = rng.choice(["upper case", "reverse word order", "title case"])
        out = {
            "upper case": s.upper(),
            "reverse word order": " ".join(reversed(s.split())),
            "title case": s.title(),
        }[style]
        q, ans = f"Rewrite this sentence in {style}: {s}", out
    else:
        s = rng.choice(_SENTENCES)
        q, ans = f"How many words are in this sentence? {s}", f"It has {len(s.split())} words."
    return [msg("user", q), msg("assistant", ans, True)]


def generate(n: int = 200, seed: str = "palaestra-general-chat-v1") -> list[list[Message]]:
    """``n`` short conversations, the same on every machine."""
    rng = random.Random(seed)
    return [_one(rng, i) for i in range(n)]


def shipped_path() -> Path:
    return Path(str(files("palaestra.data").joinpath("general", "chat.jsonl")))


def load_general(source: str | Path | None = None) -> list[list[Message]]:
    """General conversations from a JSONL file (``{"messages": [...]}`` per line), a
    ``datasets`` folder with a ``messages`` column, or the shipped set (``None``).

    Assistant turns train unless they say ``train: false``.
    """
    path = shipped_path() if source is None else Path(source)
    raw: list[Any]
    if path.is_dir():
        from datasets import load_from_disk

        ds: Any = load_from_disk(str(path))
        raw = list(ds["messages"])
    else:
        with path.open() as f:
            raw = [json.loads(line)["messages"] for line in f if line.strip()]
    convs: list[list[Message]] = []
    for conv in raw:
        convs.append(
            [
                msg(
                    str(m["role"]),
                    str(m["content"]),
                    m.get("train") is not False if m["role"] == "assistant" else None,
                )
                for m in conv
            ]
        )
    return convs


def main() -> None:
    with shipped_path().open("w") as f:
        for conv in generate():
            f.write(json.dumps({"messages": conv}) + "\n")


if __name__ == "__main__":
    main()
