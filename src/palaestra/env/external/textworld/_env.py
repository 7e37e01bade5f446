"""TextWorld games on the Palaestra contract (Côté et al., "TextWorld: A Learning Environment
for Text-based Games", CGW@IJCAI 2018; https://github.com/microsoft/TextWorld, MIT license).

Games come from TextWorld's challenge generators (``tw-simple``, ``tw-cooking``,
``tw-coin_collector``, ``tw-treasure_hunter``), generated offline per seed and
cached (see ``_games`` for the split and difficulty mapping). Play goes
through ``textworld.start`` with ``EnvInfos(admissible_commands, policy_commands,
score, max_score, won, lost, objective)``.

- Observation: the game's own text; the first one drops TextWorld's ASCII-art
  banner and starts with the objective (the task's instruction).
- Actions: TextWorld's admissible commands are ``available_actions()``. A
  command outside that list is rejected with feedback listing the valid
  ones, without reaching the game. Deviation: the Inform parser would also
  accept synonyms ("e" for "go east"), but a command it accepts without
  changing anything ("You can't see any such thing.") would count as a valid
  step, and rejection keeps invalid-action counts comparable across
  environments (as AgentGym's TextWorld-based ALFWorld does).
- Reward: 1.0 on the step that wins, else 0 (TextWorld's intermediate points
  show in ``progress()`` = score / max_score, and in ``info["score"]``). A lost
  game (cooking: a burnt or eaten ingredient) terminates with success False.
- Expert: the game's ``policy_commands`` — TextWorld recomputes the shortest
  winning command sequence from the current state after every step, so the
  expert recovers from any deviation that left the game winnable. Where
  TextWorld finds no policy (cooking with ``drop=True``, a lost game) the
  expert follows the game's walkthrough while the episode is still on it,
  else returns ``look``.
- Snapshot: the default replay of actions from the seed (games are
  deterministic; a step costs ~1-3 ms).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from palaestra.env._core import Difficulty, EnvError, Environment, Observation, Split, Task
from palaestra.env.external.textworld._games import (
    check_params,
    ensure_game,
    game_seed,
    objective,
    settings_for,
)

try:
    import textworld
except ImportError as e:  # pragma: no cover - exercised with the import blocked
    raise ImportError(
        'TextWorld environments need the textworld package: pip install "palaestra[textworld]"'
    ) from e

_INFOS = dict(
    admissible_commands=True,
    policy_commands=True,
    score=True,
    max_score=True,
    won=True,
    lost=True,
    objective=True,
    extras=["walkthrough"],
)
_STATUS_LINE = re.compile(r"\n>[^\n]*\Z")


class TextWorldEnv(Environment):
    description = (
        "TextWorld parser games generated offline from Microsoft TextWorld's challenges: "
        "explore rooms, open containers and doors, unlock with keys, collect and place "
        "objects; the cooking challenge asks to read a recipe, gather, cut and cook "
        "ingredients and prepare the meal."
    )
    action_help = (
        "look | inventory | go north/south/east/west | examine X | take X | take X from Y | "
        "put X on Y | insert X into Y | drop X | open X | close X | unlock X with K | "
        "eat X | cook X with Y | slice/dice/chop X with knife | prepare meal "
        "(use the object names exactly as the game writes them)"
    )
    action_verbs = (
        "go",
        "take",
        "put",
        "insert",
        "drop",
        "open",
        "close",
        "unlock",
        "lock",
        "examine",
        "eat",
        "cook",
        "slice",
        "dice",
        "chop",
        "prepare",
        "look",
        "inventory",
    )

    def __init__(self, challenge: str) -> None:
        super().__init__()
        if challenge not in ("tw-simple", "tw-cooking", "tw-coin_collector", "tw-treasure_hunter"):
            raise ValueError(f"unknown TextWorld challenge {challenge!r}")
        self.challenge = challenge
        self._game: Any = None
        self._game_file: Path | None = None
        self._state: Any = None
        self._valid_actions: list[str] = []

    # ---- tasks ----------------------------------------------------------------

    def _game_file_for(
        self, seed: int, split: Split, difficulty: Difficulty, params: dict[str, JsonValue]
    ) -> Path:
        settings = settings_for(self.challenge, split, difficulty, seed, params)
        return ensure_game(self.challenge, settings, game_seed(self.challenge, split, seed))

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        check_params(self.challenge, params)
        path = self._game_file_for(seed, split, difficulty, params)
        goal = objective(path) or "Find out what to do and win the game."
        return self._new_task(seed, split, difficulty, params, goal)

    # ---- episode ----------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        check_params(self.challenge, task.params)
        path = self._game_file_for(task.seed, task.split, task.difficulty, dict(task.params))
        try:
            if self._game is None or self._game_file != path:
                self._close()
                self._game = textworld.start(str(path), request_infos=textworld.EnvInfos(**_INFOS))
                self._game_file = path
            self._state = self._game.reset()
            self._valid_actions = []
        except Exception as e:
            raise EnvError(f"TextWorld failed to start {path}: {e}") from e
        text = str(self._state.feedback or "")
        # The first feedback is TextWorld's ASCII-art banner, then the objective, then the room.
        at = text.find(task.instruction[:40])
        text = text[at:] if at >= 0 else f"{task.instruction}\n\n{text}"
        text = _STATUS_LINE.sub("", text)  # the Z-machine status line after the first prompt
        return f"{text.strip()}\n\nCommands look like: {self.action_help}"

    def _admissible(self) -> list[str]:
        return [str(c) for c in (self._state.admissible_commands or [])]

    def _step(self, action: str) -> Observation:
        valid = self._admissible()
        if action.lower() not in {c.lower() for c in valid}:
            return self.reject(
                f"{action[:80]!r} is not a valid command here. Valid commands: "
                + ", ".join(valid)
                + "."
            )
        self._valid_actions.append(action.lower())
        try:
            self._state, _, _ = self._game.step(action.lower())
        except Exception as e:
            raise EnvError(f"TextWorld failed on {action!r}: {e}") from e
        text = str(self._state.feedback or "").strip() or "Nothing happens."
        info: dict[str, Any] = {"score": int(self._state.score or 0)}
        if self._state.won:
            return Observation(
                text=text, reward=1.0, terminated=True, info={**info, "success": True}
            )
        if self._state.lost:
            return Observation(text=text, terminated=True, info={**info, "success": False})
        return Observation(text=text, info=info)

    def available_actions(self) -> list[str]:
        if self._state is None:
            return []
        return self._admissible()

    def progress(self) -> float:
        if self._state is None:
            return 0.0
        if self._state.won:
            return 1.0
        top = float(self._state.max_score or 0)
        return min(1.0, max(0.0, float(self._state.score or 0) / top)) if top > 0 else 0.0

    def expert(self) -> str:
        if self._state is None:
            return "look"
        plan = self._state.policy_commands or []
        if plan:
            return str(plan[0])
        # No policy from this state (e.g. cooking with drop=True): follow the walkthrough
        # while the episode is still on it.
        walk = [str(c) for c in (self._state["extra.walkthrough"] or [])]
        done = [a.lower() for a in self._valid_actions]
        if len(done) < len(walk) and walk[: len(done)] == done:
            return walk[len(done)]
        return "look"

    def _close(self) -> None:
        if self._game is not None:
            try:
                self._game.close()
            finally:
                self._game = None
                self._game_file = None
