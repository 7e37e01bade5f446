"""TextArena single-player games (Guertler et al., 2025, ``textarena`` 0.7) as Palaestra environments.

The game's own prompt is the task instruction, its messages (board, hints,
"You moved disk 1 from A to C.") are the observations, and actions are its
own bracketed strings (``[A C]``, ``[17]``, ``[down]``, ``[1 2 3 4]``,
``[5 3 7]``); text around the brackets is allowed, as in TextArena.

Mapping onto the contract, and where we deviate:

- splits and seeds: the games have no folds; a task's game seed is
  ``3 * seed + {0, 1, 2}`` for train/test/heldout, so the splits hold
  disjoint boards (Tower of Hanoi has one board per difficulty: its seed
  changes nothing). Difficulty picks the game's size (``settings`` at
  registration);
- global RNG: TextArena reseeds and draws from the process-wide ``random``.
  Every call into the game runs with the episode's own ``random`` state
  swapped in (and the caller's restored after), under a lock shared by all
  TextArena environments in the process. Other threads' use of ``random``
  during those calls still sees the swapped state;
- invalid moves: TextArena ends the game at the second invalid move in a row
  and Tower of Hanoi applies several bracketed moves from one message. Here
  an action must hold exactly one bracketed move; an invalid one is rejected
  with TextArena's reason and the game is restored to its state before the
  move (a deep copy), so it never counts and never ends the episode;
- reward 1.0 when solved, else 0.0 (TextArena's partial score at a loss is
  in ``info["textarena_reward"]``); the game's own turn limit ends it;
- ``expert()`` and ``progress()`` are ours (``_games``), TextArena has none.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import random
import re
import threading
from collections.abc import Generator, Mapping
from typing import Any

from pydantic import JsonValue

from palaestra.env._core import (
    SPLITS,
    Difficulty,
    EnvError,
    Environment,
    Observation,
    ResetNeeded,
    Split,
    Task,
)

try:
    import textarena
except ImportError as e:  # pragma: no cover - exercised with the import blocked
    raise ImportError(
        f'TextArena environments need the textarena package ({e}): pip install "palaestra[textarena]"'
    ) from e

from palaestra.env.external.textarena._games import GAMES, Game

_MOVE = re.compile(r"\[[^\[\]]*\]")
_RANDOM_LOCK = threading.RLock()
_PLAYER_ACTION = textarena.ObservationType.PLAYER_ACTION
_PROMPT = textarena.ObservationType.PROMPT


class TextArenaEnv(Environment):
    description = (
        "Single-player TextArena puzzles (Tower of Hanoi, Guess the Number, Frozen Lake, "
        "Mastermind, Sudoku) with TextArena's prompts, boards and bracketed moves."
    )
    action_help = (
        "one move in square brackets, in the game's format: [A C] (Tower of Hanoi), [17] (Guess "
        "the Number), [down] (Frozen Lake), [1 2 3 4] (Mastermind), [row column digit] (Sudoku)"
    )

    def __init__(self, game: str, settings: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        if game not in GAMES:
            raise ValueError(f"game {game!r} is not adapted; choose one of {sorted(GAMES)}")
        missing = [d for d in ("easy", "medium", "hard") if d not in settings]
        if missing:
            raise ValueError(f"settings must give TextArena kwargs for {missing}")
        self._game: Game = GAMES[game]()
        module, _, cls = self._game.entry.partition(":")
        self._cls: Any = getattr(importlib.import_module(module), cls)
        self._settings = {k: dict(v) for k, v in settings.items()}
        self._ta: Any = None
        self._rng: Any = None  # the episode's `random` state
        self._solved = False

    # ---- isolation of TextArena's global RNG -----------------------------------

    @contextlib.contextmanager
    def _own_random(self, state: Any) -> Generator[list[Any], None, None]:
        """Run with ``random`` set to ``state``; yields a 1-list that receives the state after."""
        out: list[Any] = [state]
        with _RANDOM_LOCK:
            outer = random.getstate()
            try:
                if state is not None:
                    random.setstate(state)
                with contextlib.redirect_stdout(io.StringIO()):  # FrozenLake prints warnings
                    yield out
            finally:
                out[0] = random.getstate()
                random.setstate(outer)

    def _new_game(self, split: Split, seed: int, difficulty: Difficulty) -> tuple[Any, Any]:
        ta = self._cls(**self._settings[difficulty])
        with self._own_random(None) as rng:
            ta.reset(num_players=1, seed=3 * seed + SPLITS.index(split))
        return ta, rng[0]

    # ---- tasks ----------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        if params:
            raise ValueError(f"unknown params {sorted(params)}; TextArena tasks take none")
        ta, _ = self._new_game(split, seed, difficulty)
        prompt = next(m for _, m, kind in ta.state.observations[0] if kind == _PROMPT)
        return self._new_task(seed, split, difficulty, {}, prompt.strip())

    def _reset(self, task: Task) -> str:
        try:
            self._ta, self._rng = self._new_game(task.split, task.seed, task.difficulty)
        except Exception as e:
            raise EnvError(f"TextArena failed to start {task.task_id}: {e}") from e
        self._solved = False
        board = [m for _, m, kind in self._messages() if kind != _PROMPT]
        return "\n\n".join([task.instruction, *board])

    def _messages(self) -> list[tuple[int, str, Any]]:
        _, messages = self._ta.get_observation()
        return messages

    @property
    def _t(self) -> Any:
        if self._ta is None:
            raise ResetNeeded("call reset(task) first")
        return self._ta

    # ---- acting ---------------------------------------------------------------

    def _step(self, action: str) -> Observation:
        moves = _MOVE.findall(action)
        if len(moves) != 1:
            what = "no move in [brackets]" if not moves else f"{len(moves)} moves"
            return self.reject(
                f"Your action has {what}; send exactly one move in square brackets, "
                f"e.g. {self._game.example}.",
                kind="malformed",
            )
        before, rng_before = copy.deepcopy(self._t), self._rng
        try:
            with self._own_random(self._rng) as rng:
                done, _ = self._t.step(moves[0])
            self._rng = rng[0]
            messages = self._messages()
        except Exception as e:
            raise EnvError(f"TextArena crashed on {moves[0]!r}: {e}") from e
        state = self._t.state
        if state.error_count > 0:  # TextArena flagged the move invalid: undo it entirely
            self._ta, self._rng = before, rng_before
            reason = next((m for _, m, _ in messages if "Reason:" in m), "invalid move")
            reason = reason.split("Reason:", 1)[-1].split(" Please resubmit")[0].strip()
            return self.reject(f"Invalid move {moves[0]}: {reason}")
        text = "\n\n".join(m for _, m, kind in messages if kind != _PLAYER_ACTION) or "OK."
        if not done:
            return Observation(text=text)
        self._solved = self._game.solved(self._t)
        raw = float((state.rewards or {}).get(0, 0.0))
        reason = state.game_info[0].get("reason") or ""
        return Observation(
            text=f"{text}\n\n{reason}".strip(),
            reward=1.0 if self._solved else 0.0,
            terminated=True,
            info={"success": self._solved, "textarena_reward": raw},
        )

    # ---- oracle and progress ----------------------------------------------------

    def available_actions(self) -> list[str]:
        return self._game.actions(self._t)

    def progress(self) -> float:
        if self._ta is None:
            return 0.0
        return self._game.progress(self._ta)

    def expert(self) -> str:
        return self._game.expert(self._t)
