"""``ToyEnv``: a tiny, fully specified environment for tests and examples.

A number line: the agent starts at 0 and must stop exactly on a target
(``inc``, ``dec``, ``stop``). It implements the whole contract in a few
lines, so tests of the machinery around environments (wrappers, server,
checker, adapters) do not depend on a real family. Hooks can be injected to
simulate faults (``on_step=...`` raising ``EnvError``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from palaestra.env._core import (
    Difficulty,
    Environment,
    Observation,
    Split,
    StateSnapshotMixin,
    Task,
)

_SPAN = {"easy": 3, "medium": 6, "hard": 10}


class ToyEnv(StateSnapshotMixin, Environment):
    description = "Walk a number line from 0 to a target and stop on it."
    action_help = "inc | dec | stop"
    action_verbs = ("inc", "dec", "stop")

    def __init__(self, on_step: Callable[[str], None] | None = None) -> None:
        super().__init__("toy-v1")
        self.on_step = on_step
        self.state: dict[str, Any] = {"pos": 0, "target": 0}

    def make_task(
        self, seed: int, split: Split = "train", difficulty: Difficulty = "easy", **params: Any
    ) -> Task:
        rng = random.Random(f"{self.env_id}:{split}:{difficulty}:{seed}")
        target = rng.randint(1, _SPAN[difficulty]) * (1 if split != "heldout" else -1)
        return self._new_task(seed, split, difficulty, params, f"Stop on the number {target}.")

    def _target(self, task: Task) -> int:
        return int(task.instruction.removeprefix("Stop on the number ").rstrip("."))

    def _reset(self, task: Task) -> str:
        self.state = {"pos": 0, "target": self._target(task)}
        return f"{task.instruction}\nYou are at 0."

    def _step(self, action: str) -> Observation:
        if self.on_step is not None:
            self.on_step(action)
        if action not in ("inc", "dec", "stop"):
            return self.reject(f"Unknown action {action!r}. Actions: inc, dec, stop.", "malformed")
        if action == "stop":
            ok = self.state["pos"] == self.state["target"]
            self.state["solved"] = ok
            return Observation(
                text="You stop. " + ("Correct!" if ok else "Wrong number."),
                reward=1.0 if ok else 0.0,
                terminated=True,
                info={"success": ok},
            )
        self.state["pos"] += 1 if action == "inc" else -1
        return Observation(text=f"You are at {self.state['pos']}.")

    def available_actions(self) -> list[str]:
        return ["inc", "dec", "stop"]

    def progress(self) -> float:
        target = self.state["target"]
        if target == 0:
            return 0.0
        pos = self.state["pos"]
        if self.state.get("solved"):
            return 1.0
        if (pos > 0) != (target > 0):
            return 0.0
        return min(abs(pos), abs(target)) / (abs(target) + 1)

    def expert(self) -> str:
        pos, target = self.state["pos"], self.state["target"]
        return "stop" if pos == target else ("inc" if pos < target else "dec")
