"""Seeded generation and on-disk caching of TextWorld challenge games.

A game is fixed by (challenge, settings, game seed, TextWorld version). It is
generated in-process with ``textworld.challenges`` and compiled to a Z-machine
file (Inform 7, shipped in the ``textworld`` wheel), which takes seconds; the
compiled files are cached under ``$PALAESTRA_CACHE/textworld`` (default
``~/.cache/palaestra/textworld``). A game is built in a temporary folder and
renamed into place in one step, so two processes generating the same game
never see a half-written one (the loser's copy is discarded; both are equal).

Splits and difficulties (our mapping; TextWorld has no train/test folds for
most challenges):

- the game seed is derived from ``(challenge, split, seed)`` with SHA-256, so
  train, test and heldout never share a game;
- ``tw-simple``: heldout sets the challenge's ``test`` flag (its held-out
  distribution of objects and rooms); train and test draw from the training
  distribution;
- ``tw-cooking``: train → the challenge's ``train`` split, test → ``valid``,
  heldout → ``test`` (unseen food items and preparations, as in the First
  TextWorld Problems competition);
- ``tw-coin_collector`` and ``tw-treasure_hunter``: seeds only.

Difficulty maps to the challenge's own settings (``SETTINGS``); ``params``
may override single settings (e.g. ``level=7``), validated per challenge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
import threading
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import JsonValue

from palaestra.env._core import Difficulty, Split

SETTINGS: dict[str, dict[Difficulty, dict[str, Any]]] = {
    "tw-simple": {
        "easy": {"rewards": "dense", "goal": "detailed"},
        "medium": {"rewards": "balanced", "goal": "detailed"},
        "hard": {"rewards": "sparse", "goal": "brief"},
    },
    "tw-cooking": {
        "easy": {"recipe": 1, "take": 1, "go": 1},
        "medium": {"recipe": 2, "take": 2, "go": 6, "open": True, "cook": True},
        # Not "drop" (limited inventory): TextWorld then finds no winning policy from
        # the current state, so the expert could not recover from deviations.
        "hard": {"recipe": 3, "take": 3, "go": 9, "open": True, "cook": True, "cut": True},
    },
    # Coin Collector: quest length (level-1)%100+1; levels above 100 add distractor rooms.
    "tw-coin_collector": {"easy": {"level": 3}, "medium": {"level": 106}, "hard": {"level": 212}},
    # Treasure Hunter: 1-10 open rooms, 11-20 closed doors/containers, 21-30 locked ones.
    "tw-treasure_hunter": {"easy": {"level": 3}, "medium": {"level": 13}, "hard": {"level": 23}},
}

#: Settings a task's ``params`` may override, with their allowed values.
OVERRIDABLE: dict[str, dict[str, tuple[JsonValue, ...]]] = {
    "tw-simple": {
        "rewards": ("dense", "balanced", "sparse"),
        "goal": ("detailed", "brief"),
    },
    "tw-cooking": {
        "recipe": (1, 2, 3, 4, 5),
        "take": (0, 1, 2, 3, 4, 5),
        "go": (1, 6, 9, 12),
        "open": (True, False),
        "cook": (True, False),
        "cut": (True, False),
        "drop": (True, False),
    },
    "tw-coin_collector": {"level": tuple(range(1, 301))},
    "tw-treasure_hunter": {"level": tuple(range(1, 31))},
}

_COOKING_SPLIT: dict[Split, str] = {"train": "train", "test": "valid", "heldout": "test"}
_LOCK = threading.Lock()  # TextWorld generation uses module-level RNGs


def check_params(challenge: str, params: Mapping[str, JsonValue]) -> None:
    allowed = OVERRIDABLE[challenge]
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(
                f"unknown param {key!r} for {challenge}; allowed: {sorted(allowed)} "
                "(each overrides one challenge setting)"
            )
        if value not in allowed[key]:
            shown = (
                allowed[key] if len(allowed[key]) < 10 else f"{allowed[key][0]}..{allowed[key][-1]}"
            )
            raise ValueError(f"param {key}={value!r} for {challenge} must be one of {shown}")
    if challenge == "tw-cooking":
        recipe = params.get("recipe", 1)
        take = params.get("take", 0)
        if isinstance(recipe, int) and isinstance(take, int) and take > recipe:
            raise ValueError(f"param take={take} must be <= recipe={recipe} for tw-cooking")


def game_seed(challenge: str, split: Split, seed: int) -> int:
    digest = hashlib.sha256(f"{challenge}|{split}|{seed}".encode()).hexdigest()
    return int(digest[:8], 16) % 65_521 + 1  # TextWorld seeds numpy RandomStates (< 2**32)


def settings_for(
    challenge: str, split: Split, difficulty: Difficulty, seed: int, params: Mapping[str, JsonValue]
) -> dict[str, Any]:
    settings: dict[str, Any] = {**SETTINGS[challenge][difficulty], **params}
    if challenge == "tw-simple":
        settings["test"] = split == "heldout"
    elif challenge == "tw-cooking":
        settings["split"] = _COOKING_SPLIT[split]
        # A shuffled recipe needs the "take" skill; without it the recipe is fixed.
        settings["recipe_seed"] = game_seed(challenge, split, seed) if settings.get("take") else 0
    return settings


def cache_root() -> Path:
    """``$PALAESTRA_CACHE/textworld`` or ``~/.cache/palaestra/textworld``."""
    root = os.environ.get("PALAESTRA_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "palaestra"
    return base / "textworld"


@contextlib.contextmanager
def _isolated_global_rngs() -> Generator[None]:
    """TextWorld's generators reseed ``random``/``numpy`` globals; give the caller's back."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def ensure_game(challenge: str, settings: Mapping[str, Any], seed: int) -> Path:
    """The compiled game file for these inputs, generating and caching it if needed."""
    import textworld
    import textworld.challenges
    import textworld.generator

    key_src = json.dumps(
        [challenge, dict(settings), seed, textworld.__version__], sort_keys=True, default=str
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    final = cache_root() / challenge / key
    game_file = final / "game.z8"
    if game_file.is_file() and (final / "game.json").is_file():
        return game_file
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
    try:
        with _LOCK, _isolated_global_rngs():
            options = textworld.GameOptions()
            options.seeds = seed
            options.path = str(tmp / "game.z8")
            options.force_recompile = True
            make = textworld.challenges.CHALLENGES[challenge][1]
            game = make(dict(settings), options)
            textworld.generator.compile_game(game, options)
        (tmp / "inputs.json").write_text(key_src)
        tmp.chmod(0o755)
        try:
            tmp.rename(final)
        except OSError:
            if not game_file.is_file():  # not "another process finished it first"
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return game_file


def objective(game_file: Path) -> str:
    """The game's objective text, as written to its ``.json`` by the compiler."""
    data = json.loads(game_file.with_suffix(".json").read_text())
    return str(data.get("objective") or "").strip()
