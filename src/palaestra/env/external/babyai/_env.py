"""BabyAI levels (Chevalier-Boisvert et al., ICLR 2019) through Farama's ``minigrid``, as text.

Each task is one BabyAI level (a gymnasium id such as
``BabyAI-GoToRedBall-v0``) reset with a fixed seed. The observation is the
agent's 7x7 egocentric view rendered as text (``_render``, BabyAI-text style
as in AgentGym) plus the mission; the success check is BabyAI's own verifier.

Actions are MiniGrid's primitive actions as text: ``turn left``, ``turn
right``, ``go forward``, ``pick up``, ``drop``, ``toggle`` (AgentGym's
higher-level "go to red ball 1" actions are not offered: they hide the
navigation the levels are about). ``done`` is not an action: BabyAI checks
the mission after every move.

Mapping onto the contract, and where we deviate:

- splits: BabyAI has no folds, so train/test/heldout use disjoint level
  seeds (``3 * seed + {0, 1, 2}``); heldout is *not* unseen vocabulary here,
  only unseen layouts;
- difficulty picks the level (``levels`` given at registration, e.g. easy =
  ``GoToRedBallNoDists``, hard = ``GoToRedBall``); the param ``level`` picks
  any other BabyAI level;
- an action that would change nothing in MiniGrid (walking into a wall,
  picking up from an empty cell, toggling a wall) is rejected with feedback
  instead of silently spending a step; toggling a box is rejected too (in
  MiniGrid it destroys the box, which can make the mission impossible and
  makes BabyAI's bot give up; the boxes in these levels are empty);
- reward 1.0 on success (BabyAI pays ``1 - 0.9 * steps / max_steps``); the
  step limit is ours (registration), MiniGrid's own limit is lifted;
- ``progress()``: the mission's clauses (``go to``, ``pick up``, ``open``,
  ``put next to`` counting 2: picked up, placed) met so far, from the
  verifier's ``a_done``/``b_done`` flags of "and/then/after" missions; once
  met a clause stays counted;
- ``expert()`` is MiniGrid's ``BabyAIBot``. The bot keeps a map of what it has
  seen and a stack of subgoals, and a bot created mid-episode (say, while the
  agent carries an unrelated object) can get stuck; so the first ``expert()``
  call of an episode replays the episode's actions on a spare copy of the
  level with a fresh bot watching, swaps that copy in, and from then on tells
  the bot every action taken, whoever chose it. Its advice therefore depends
  only on the episode's actions. It solved all 22 levels registered here on
  20 seeds each, from the start and after 8 random actions (a scratch run;
  the integration tests check 2 seeds per difficulty plus heldout seeds).

MiniGrid prints "Sampling rejected" while generating some levels; level
generation runs with stdout redirected (process-wide, for a few ms).
"""

from __future__ import annotations

import contextlib
import io
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
    import gymnasium

    # importing minigrid registers the BabyAI-* gymnasium ids
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
    from minigrid.envs.babyai.core.verifier import Instr, PutNextInstr, SeqInstr
    from minigrid.utils.baby_ai_bot import BabyAIBot
except ImportError as e:  # pragma: no cover - exercised with the import blocked
    raise ImportError(
        f'BabyAI environments need the minigrid package ({e}): pip install "palaestra[babyai]"'
    ) from e

from palaestra.env.external.babyai._render import describe_view, name

#: Text action -> MiniGrid action index (left, right, forward, pickup, drop, toggle).
ACTIONS: dict[str, int] = {
    "turn left": 0,
    "turn right": 1,
    "go forward": 2,
    "pick up": 3,
    "drop": 4,
    "toggle": 5,
}
_ALIASES: dict[str, str] = {
    "left": "turn left",
    "right": "turn right",
    "forward": "go forward",
    "move forward": "go forward",
    "pickup": "pick up",
    "pick": "pick up",
    "open": "toggle",
}
_NAMES = {v: k for k, v in ACTIONS.items()}
_UNLIMITED = 1_000_000  # MiniGrid's own step limit, lifted: ours is the registered one


@contextlib.contextmanager
def _quiet() -> Generator[None, None, None]:
    """Swallow MiniGrid's "Sampling rejected: ..." prints during level generation."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _instrs(env: RoomGridLevel) -> Instr:
    """The level's mission as BabyAI's verifier tree (set by ``gen_mission``, untyped)."""
    level: Any = env
    return level.instrs


def _weight(instr: Instr) -> int:
    if isinstance(instr, SeqInstr):
        return _weight(instr.instr_a) + _weight(instr.instr_b)
    return 2 if isinstance(instr, PutNextInstr) else 1


class BabyAIEnv(Environment):
    description = (
        "BabyAI grid-world levels (MiniGrid) as text: the agent sees a 7x7 window in front of "
        "it, described as objects with their offsets, and follows a synthetic-language mission "
        "('go to the red ball', 'put the blue key next to the green box', 'open the door on "
        "your left') with primitive moves."
    )
    action_help = "turn left | turn right | go forward | pick up | drop | toggle"
    action_verbs = ("turn", "go", "pick", "drop", "toggle")

    def __init__(self, levels: Mapping[str, str]) -> None:
        super().__init__()
        missing = [d for d in ("easy", "medium", "hard") if d not in levels]
        if missing:
            raise ValueError(f"levels must name a BabyAI level for {missing}")
        self._levels = dict(levels)
        self._envs: dict[str, RoomGridLevel] = {}  # episode envs, by level
        self._spares: dict[str, RoomGridLevel] = {}  # to replay an episode with the bot attached
        self._task_envs: dict[str, RoomGridLevel] = {}  # for make_task, never the episode's
        self._env: RoomGridLevel | None = None
        self._executed: list[int] = []  # MiniGrid actions applied this episode
        self._bot: Any = None
        self._suggestion = 0
        self._success = False
        self._met = 0.0

    # ---- tasks ----------------------------------------------------------------

    @staticmethod
    def _level_seed(split: Split, seed: int) -> int:
        return 3 * seed + SPLITS.index(split)

    def _make(self, level: str, cache: dict[str, RoomGridLevel]) -> RoomGridLevel:
        if level not in cache:
            if not level.startswith("BabyAI-") or level not in gymnasium.registry:
                raise ValueError(
                    f"level {level!r} is not a BabyAI level id; use one of "
                    f"{sorted(k for k in gymnasium.registry if k.startswith('BabyAI-'))}"
                )
            env: Any = gymnasium.make(level, max_steps=_UNLIMITED, disable_env_checker=True)
            cache[level] = env.unwrapped
        return cache[level]

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        unknown = sorted(set(params) - {"level"})
        if unknown:
            raise ValueError(f"unknown params {unknown}; BabyAI tasks take only 'level'")
        level = params.get("level", self._levels[difficulty])
        if not isinstance(level, str):
            raise ValueError(f"param 'level' must be a BabyAI level id string, got {level!r}")
        env = self._make(level, self._task_envs)
        with _quiet():
            env.reset(seed=self._level_seed(split, seed))
        return self._new_task(seed, split, difficulty, {"level": level}, str(env.mission))

    def _reset(self, task: Task) -> str:
        env = self._make(str(task.params["level"]), self._envs)
        try:
            with _quiet():
                env.reset(seed=self._level_seed(task.split, task.seed))
        except Exception as e:
            raise EnvError(f"MiniGrid failed to reset {task.task_id}: {e}") from e
        self._env, self._bot, self._success, self._met = env, None, False, 0.0
        self._executed = []
        return (
            f"Your mission: {env.mission}.\n{describe_view(env)}\n"
            f"Actions: {self.action_help}. ('toggle' opens or closes the door in front of you.)"
        )

    @property
    def _e(self) -> RoomGridLevel:
        if self._env is None:
            raise ResetNeeded("call reset(task) first")
        return self._env

    # ---- acting ---------------------------------------------------------------

    def _why_not(self, act: int) -> str | None:
        """Why ``act`` would change nothing here, or ``None`` when it does something."""
        env = self._e
        front: Any = env.grid.get(*env.front_pos)
        held = env.carrying
        if act == 2 and front is not None and not front.can_overlap():
            return f"You can't go forward: {name(front)} is in the way."
        if act == 3:
            if held is not None:
                return f"You are already carrying {name(held)}; drop it first."
            if front is None or not front.can_pickup():
                what = "nothing" if front is None else name(front)
                return f"You can't pick that up: in front of you is {what}."
        if act == 4:
            if held is None:
                return "You are not carrying anything to drop."
            if front is not None:
                return f"You can't drop {name(held)} here: {name(front)} is in front of you."
        if act == 5:
            if front is None or front.type not in ("door", "box"):
                what = "nothing" if front is None else name(front)
                return (
                    f"Nothing to toggle: in front of you is {what}. Toggle opens or closes doors."
                )
            if front.type == "box":
                return f"{name(front).capitalize()} can't be opened (boxes here are empty)."
            if front.is_locked and not (
                held is not None and held.type == "key" and held.color == front.color
            ):
                return f"The {front.color} door is locked; you need to carry the {front.color} key."
        return None

    def _step(self, action: str) -> Observation:
        text = action.lower().rstrip(".!").strip()
        text = _ALIASES.get(text, text)
        if text not in ACTIONS:
            return self.reject(
                f"Unknown action {action[:60]!r}. Actions: {self.action_help}.", kind="malformed"
            )
        act = ACTIONS[text]
        why = self._why_not(act)
        if why is not None:
            return self.reject(why)
        env = self._e
        try:
            _, reward, terminated, _, _ = env.step(act)
        except Exception as e:
            raise EnvError(f"MiniGrid crashed on {text!r}: {e}") from e
        self._executed.append(act)
        if self._bot is not None:
            try:
                self._suggestion = self._bot.replan(act)
            except Exception:  # the bot gave up; a fresh one replans at the next expert()
                self._bot = None
        self._success = bool(terminated) and float(reward) > 0
        self._met = max(self._met, self._clauses_met(_instrs(env)))
        view = describe_view(env)
        if terminated:
            verdict = "Mission complete" if self._success else "Mission failed"
            return Observation(
                text=f"You {text}.\n{view}\n{verdict}: {env.mission}.",
                reward=1.0 if self._success else 0.0,
                terminated=True,
                info={"success": self._success},
            )
        return Observation(text=f"You {text}.\n{view}")

    # ---- oracle and progress ----------------------------------------------------

    def _clauses_met(self, instr: Instr, done: bool = False) -> float:
        if done:
            return _weight(instr)
        if isinstance(instr, SeqInstr):
            seq: Any = instr
            return self._clauses_met(instr.instr_a, seq.a_done == "success") + self._clauses_met(
                instr.instr_b, seq.b_done == "success"
            )
        if isinstance(instr, PutNextInstr):
            held = self._e.carrying
            return (
                1.0 if held is not None and any(held is o for o in instr.desc_move.obj_set) else 0
            )
        return 0.0

    def available_actions(self) -> list[str]:
        return [t for t, a in ACTIONS.items() if self._why_not(a) is None]

    def progress(self) -> float:
        if self._env is None:
            return 0.0
        if self._success:
            return 1.0
        return min(self._met / _weight(_instrs(self._env)), 0.99)

    def _attach_bot(self) -> None:
        """Replay the episode on a spare env with a fresh bot told every action, then swap envs.

        The bot plans from the map it has seen and from its own subgoal stack;
        created mid-episode (e.g. while carrying an unrelated object) it can
        fail, while a bot that watched the whole episode replans correctly.
        """
        task = self.task
        if task is None:
            raise ResetNeeded("call reset(task) first")
        level = str(task.params["level"])
        mirror = self._make(level, self._spares)
        with _quiet():
            mirror.reset(seed=self._level_seed(task.split, task.seed))
        bot: Any = BabyAIBot(mirror)
        suggestion = bot.replan()
        for act in self._executed:
            mirror.step(act)
            suggestion = bot.replan(act)
        self._spares[level], self._envs[level] = self._e, mirror
        self._env, self._bot, self._suggestion = mirror, bot, suggestion

    def expert(self) -> str:
        if self._bot is None:
            try:
                self._attach_bot()
            except (ResetNeeded, EnvError):
                raise
            except Exception as e:
                self._bot = None
                raise RuntimeError(f"BabyAIBot found no plan for {self._e.mission!r}: {e}") from e
        act = int(self._suggestion)
        if act not in _NAMES:
            raise RuntimeError(
                f"BabyAIBot suggested 'done' but the mission {self._e.mission!r} is not met"
            )
        return _NAMES[act]

    def _close(self) -> None:
        for cache in (self._envs, self._spares, self._task_envs):
            for env in cache.values():
                env.close()
            cache.clear()
