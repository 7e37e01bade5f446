"""ScienceWorld tasks on the Palaestra contract (Wang et al., "ScienceWorld: Is your Agent
Smarter than a 5th Grader?", EMNLP 2022; https://github.com/allenai/ScienceWorld, Apache-2.0).

One JVM (``scienceworld.ScienceWorldEnv``, py4j, the jar in the wheel) per
environment instance, started on first use (seconds) and reused by every
episode; ``close()`` stops it.

- Splits: each task has train/dev/test variations. Our train → its train
  variations, test → dev, heldout → test; our seed indexes that list (modulo
  its length, so two seeds can name the same variation).
- Difficulty: ScienceWorld has no difficulty levels; all three use the
  unsimplified task (deviation: its simplifications, e.g. ``teleportAction``,
  are not mapped, since the gold paths were not checked under them).
- Actions: free text, parsed by ScienceWorld. ``available_actions()`` is its
  list of valid action-object combinations in the current state (hundreds).
  An input it cannot parse ("No known action matches that input.") is
  rejected; an ambiguous one is resolved to ScienceWorld's first reading
  (option 0), as AgentGym's SciWorld server does, and the text says so.
- Reward 1.0 when the task is completed (score 100), else 0. ``progress()``
  is score / 100 clipped to [0, 1]; a negative score (e.g. focusing on the
  wrong object) ends the episode as a failure.
- Expert: the variation's gold path, generated from the start. ScienceWorld
  has no planner from an arbitrary state, so the expert follows the gold path
  while the episode stays on it (``look``/``inventory``/``task`` actions do
  not count as leaving it); after any other deviation it answers
  ``look around`` (documented limitation).
- Snapshot: the default replay from the seed; ScienceWorld variations are
  deterministic, but a step costs 30-75 ms, so restoring a long episode is slow.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from palaestra.env._core import Difficulty, EnvError, Environment, Observation, Split, Task

try:
    from scienceworld import ScienceWorldEnv as _SW
except ImportError as e:  # pragma: no cover - exercised with the import blocked
    raise ImportError(
        "ScienceWorld environments need the scienceworld package and Java 17: "
        'pip install "palaestra[scienceworld]" and apt-get install openjdk-17-jre-headless'
    ) from e

_UNKNOWN = "No known action matches that input."
_AMBIGUOUS = "Ambiguous request"
_INERT_PREFIXES = ("look around", "look at ", "look in ", "inventory", "task")


class ScienceWorldEnv(Environment):
    description = (
        "ScienceWorld: elementary-school science tasks (boil, melt, grow plants, test "
        "conductivity, Mendelian genetics...) in a simulated house with a kitchen, "
        "greenhouse, workshop and more; thermodynamics, electricity and biology are simulated."
    )
    action_help = (
        "look around | look at X | open/close X | go to ROOM | pick up X | put down X | "
        "move X to Y | pour X into Y | activate/deactivate X | use X on Y | "
        "connect X to Y | focus on X | wait | wait1 | inventory | task"
    )
    action_verbs = (
        "look",
        "open",
        "close",
        "go",
        "pick",
        "put",
        "move",
        "pour",
        "activate",
        "deactivate",
        "use",
        "connect",
        "focus",
        "wait",
        "inventory",
    )

    def __init__(self, task_name: str) -> None:
        super().__init__()
        self.task_name = task_name
        self._sw: Any = None
        self._variations: dict[str, list[int]] = {}
        self._score = 0.0
        self._valid: list[str] = []
        self._gold: list[str] = []
        self._gold_pos = 0
        self._off_gold = False

    # ---- the JVM --------------------------------------------------------------------

    def _server(self) -> Any:
        if self._sw is None:
            try:
                self._sw = _SW("", envStepLimit=10**9)  # our StepLimit wrapper truncates
                names = list(self._sw.get_task_names())
            except Exception as e:
                self._sw = None
                raise EnvError(
                    f"ScienceWorld failed to start its JVM ({e}); is Java 17 installed "
                    "(java -version; apt-get install openjdk-17-jre-headless)?"
                ) from e
            if self.task_name not in names:
                raise ValueError(f"unknown ScienceWorld task {self.task_name!r}; one of {names}")
        return self._sw

    def _load(self, split: Split, seed: int) -> str:
        sw = self._server()
        try:
            if not self._variations:
                sw.load(self.task_name, 0, "", generateGoldPath=False)
                self._variations = {
                    "train": list(sw.get_variations_train()),
                    "test": list(sw.get_variations_dev()),
                    "heldout": list(sw.get_variations_test()),
                }
            variations = self._variations[split]
            variation = variations[seed % len(variations)]
            # Always reload: ScienceWorld's own reset() did not reproduce the loaded start
            # state (check_env found a different first observation for some variations).
            sw.load(self.task_name, variation, "", generateGoldPath=True)
            self._gold = [str(a) for a in sw.get_gold_action_sequence()]
            obs, info = sw.reset()
            self._score = float(info.get("score", 0))
            self._valid = [str(a) for a in info.get("valid", [])]
            return str(obs)
        except Exception as e:
            raise EnvError(f"ScienceWorld failed to load {self.task_name}: {e}") from e

    # ---- tasks ----------------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        if params:
            raise ValueError(f"scienceworld environments take no params, got {sorted(params)}")
        # The JVM holds one episode: put back an episode in progress after this one.
        snap = self.snapshot() if self.task is not None else None
        self._load(split, seed)
        instruction = str(self._server().get_task_description()).strip()
        if snap is not None:
            self.restore(snap)
        return self._new_task(seed, split, difficulty, {}, instruction)

    # ---- episode ---------------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        obs = self._load(task.split, task.seed)
        self._gold_pos = 0
        self._off_gold = False
        return f"{task.instruction}\n\n{obs.strip()}\n\nActions look like: {self.action_help}"

    def _step(self, action: str) -> Observation:
        try:
            obs, _, done, info = self._sw.step(action)
            note = ""
            if str(obs).startswith(_AMBIGUOUS):
                note = f"(Ambiguous; taking the first reading.) {str(obs).strip()}\n"
                obs, _, done, info = self._sw.step("0")
        except Exception as e:
            raise EnvError(f"ScienceWorld failed on {action!r}: {e}") from e
        text = str(obs).strip()
        if text == _UNKNOWN:
            return self.reject(f"{_UNKNOWN} {self._grammar_hint()}")
        self._track_gold(action)
        self._score = float(info.get("score", 0))
        self._valid = [str(a) for a in info.get("valid", [])]
        text = note + (text or "Nothing happens.")
        out: dict[str, Any] = {"score": self._score}
        if self._score >= 100:
            return Observation(
                text=text, reward=1.0, terminated=True, info={**out, "success": True}
            )
        if done or self._score < 0:
            return Observation(text=text, terminated=True, info={**out, "success": False})
        return Observation(text=text, info=out)

    def _track_gold(self, action: str) -> None:
        if self._off_gold:
            return
        if self._gold_pos < len(self._gold) and action == self._gold[self._gold_pos]:
            self._gold_pos += 1
        elif not action.startswith(_INERT_PREFIXES):
            self._off_gold = True

    def available_actions(self) -> list[str]:
        return list(self._valid)

    def progress(self) -> float:
        return min(1.0, max(0.0, self._score / 100.0))

    def expert(self) -> str:
        if not self._off_gold and self._gold_pos < len(self._gold):
            return self._gold[self._gold_pos]
        return "look around"

    def _close(self) -> None:
        if self._sw is not None:
            try:
                self._sw.close()
            except Exception:  # the JVM may already be gone; nothing left to release
                pass
            finally:
                self._sw = None
                self._variations = {}
