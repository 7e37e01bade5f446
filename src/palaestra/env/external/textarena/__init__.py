"""TextArena single-player games: ``textarena/*-v1`` ids (extra ``palaestra[textarena]``).

Only games that run offline on Python 3.11 and have a solver we could write
are registered (word games need NLTK downloads). Each id fixes the TextArena
constructor arguments per difficulty; the environment lives in ``_env``,
imported only when an id is made.
"""

from __future__ import annotations

from typing import Any

from palaestra.env._registry import register

_ENTRY = "palaestra.env.external.textarena._env:TextArenaEnv"

#: id -> (TextArena game, {difficulty: constructor kwargs}, our step limit)
GAMES: dict[str, tuple[str, dict[str, dict[str, Any]], int]] = {
    "textarena/tower-of-hanoi-v1": (
        "TowerOfHanoi",
        {
            "easy": {"num_disks": 3, "max_turns": 14},
            "medium": {"num_disks": 4, "max_turns": 30},
            "hard": {"num_disks": 5, "max_turns": 62},
        },
        100,
    ),
    "textarena/guess-the-number-v1": (
        "GuessTheNumber",
        {
            "easy": {"min_number": 1, "max_number": 20, "max_turns": 10},
            "medium": {"min_number": 1, "max_number": 50, "max_turns": 12},
            "hard": {"min_number": 1, "max_number": 100, "max_turns": 14},
        },
        30,
    ),
    "textarena/frozen-lake-v1": (
        "FrozenLake",
        {
            "easy": {"size": 4, "num_holes": 3},
            "medium": {"size": 5, "num_holes": 6},
            "hard": {"size": 6, "num_holes": 10},
        },
        50,
    ),
    "textarena/mastermind-v1": (
        "Mastermind",
        {
            "easy": {"code_length": 4, "num_numbers": 6, "max_turns": 20},
            "medium": {"code_length": 4, "num_numbers": 8, "max_turns": 30},
            "hard": {"code_length": 5, "num_numbers": 8, "max_turns": 30},
        },
        60,
    ),
    "textarena/sudoku-v1": (
        "Sudoku",
        {
            "easy": {"clues": 75, "max_turns": 100},
            "medium": {"clues": 70, "max_turns": 100},
            "hard": {"clues": 60, "max_turns": 100},
        },
        150,
    ),
}


def register_envs() -> None:
    for env_id, (game, settings, limit) in GAMES.items():
        register(
            env_id,
            _ENTRY,
            max_episode_steps=limit,
            kwargs={"game": game, "settings": settings},
            source="palaestra[textarena]",
        )
