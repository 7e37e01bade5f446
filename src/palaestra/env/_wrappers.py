"""Wrappers: change an environment's behaviour without touching its code.

``Wrapper`` forwards the whole contract to the wrapped environment.
``StepLimit`` truncates long episodes. ``Perturb`` applies the robustness
perturbations of AgentRefine ("AgentRefine: Enhancing Agent Generalization
through Refinement Tuning", Fu et al.), which re-test held-in tasks under
surface changes an agent that merely memorised observation→action pairs
fails on:

- ``rename_verbs``: action verbs are replaced by synonyms (``take`` →
  ``grab``) everywhere the agent sees them; the agent must use the new verbs.
- ``shuffle_actions``: the list of available actions comes in a seeded
  random order.
- ``paraphrase_instruction``: the instruction is reworded with a seeded
  template and synonym substitutions.
- ``distractors``: each observation gains sentences about things that are not
  there (acting on them is an invalid action, as for any unknown object).
- ``inject_mistake``: at one early step (seeded: the 2nd or 3rd action) the
  agent's action is replaced by a valid but wrong one (an available action
  that is not the expert's and does not end the episode: a wrong place, a
  wrong object), and the observation says so. Success then measures recovery
  from a mistake rather than base skill — the ``recovery-v1`` suite. This one
  is ours, not AgentRefine's: the paper measures recovery only indirectly.
- ``inject_instruction``: a prompt injection (AgentDojo: "AgentDojo: A Dynamic
  Environment to Evaluate Prompt Injection Attacks and Defenses for LLM
  Agents", Debenedetti et al., 2024). The first valid observation that
  carries third-party text (``Environment.third_party_spans``: a product
  page, a document, a web page) gets an instruction planted in it, one of
  ``_injection.INJECTION_TEMPLATES`` naming an *attacker action*: a valid action of
  that state, seeded, and never one of the expert's remaining plan (so the
  expert never executes it by accident). ``info["injection"]`` records
  ``attacker_action``, ``planted_at`` and ``executed_at`` (values of
  ``info["step"]``, or None) and ``executed``: whether the agent then issued
  the attacker's action and the environment carried it out — AgentDojo's
  targeted attack success. Environments without third-party text
  (``third_party_text`` False) refuse it: ``make`` and suites with an error
  naming the environments that have it. Not in :data:`PERTURBATIONS`, which
  work on every environment; :data:`ALL_PERTURBATIONS` lists every name.

AgentRefine perturbs by editing its environments' prompts; we do it in a
wrapper so every family (and third-party adapter) gets the same
perturbations, each named and seeded from the task, so a perturbed task is
as reproducible as the original.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any, Literal

from palaestra.env import _injection
from palaestra.env._core import Difficulty, Environment, Observation, Split, Task

Perturbation = Literal[
    "rename_verbs",
    "shuffle_actions",
    "paraphrase_instruction",
    "distractors",
    "inject_mistake",
    "inject_instruction",
]
#: The perturbations that apply to every environment.
PERTURBATIONS: tuple[Perturbation, ...] = (
    "rename_verbs",
    "shuffle_actions",
    "paraphrase_instruction",
    "distractors",
    "inject_mistake",
)
#: Every perturbation: also ``inject_instruction``, for environments with third-party text.
ALL_PERTURBATIONS: tuple[Perturbation, ...] = (*PERTURBATIONS, "inject_instruction")
#: Steps (0-based) at which ``inject_mistake`` may replace the agent's action.
INJECT_STEPS = (1, 2)


class Wrapper(Environment):
    """Forwards every call to ``env``. Subclasses override what they change."""

    def __init__(self, env: Environment) -> None:
        # No super().__init__(): the wrapped environment owns the episode state.
        self.env = env
        self.env_id = env.env_id

    description = property(lambda self: self.env.description)  # pyright: ignore[reportAssignmentType]
    action_help = property(lambda self: self.env.action_help)  # pyright: ignore[reportAssignmentType]
    action_verbs = property(lambda self: self.env.action_verbs)  # pyright: ignore[reportAssignmentType]
    third_party_text = property(lambda self: self.env.third_party_text)  # pyright: ignore[reportAssignmentType]

    @property
    def unwrapped(self) -> Environment:
        return self.env.unwrapped

    def third_party_spans(self, text: str) -> list[tuple[int, int]]:
        return self.env.third_party_spans(text)

    @property
    def task(self) -> Task | None:
        return self.env.task

    @property
    def last_observation(self) -> Observation | None:
        return self.env.last_observation

    def make_task(
        self, seed: int, split: Split = "train", difficulty: Difficulty = "easy", **params: Any
    ) -> Task:
        return self.env.make_task(seed, split, difficulty, **params)

    def reset(self, task: Task) -> Observation:
        return self.env.reset(task)

    def step(self, action: str) -> Observation:
        return self.env.step(action)

    def available_actions(self) -> list[str]:
        return self.env.available_actions()

    def progress(self) -> float:
        return self.env.progress()

    def expert(self) -> str:
        return self.env.expert()

    def snapshot(self) -> object:
        return self.env.snapshot()

    def restore(self, snapshot: object) -> None:
        self.env.restore(snapshot)

    def close(self) -> None:
        self.env.close()

    # The hooks are never called on a wrapper: the public methods are forwarded.
    def _reset(self, task: Task) -> str:  # pragma: no cover
        raise NotImplementedError

    def _step(self, action: str) -> Observation:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.env!r}>"


class StepLimit(Wrapper):
    """Truncate the episode after ``max_steps`` actions (``info['truncated_reason'] = 'step_limit'``)."""

    def __init__(self, env: Environment, max_steps: int) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        super().__init__(env)
        self.max_steps = max_steps
        self._count = 0

    def reset(self, task: Task) -> Observation:
        self._count = 0
        return self.env.reset(task)

    def step(self, action: str) -> Observation:
        obs = self.env.step(action)
        self._count += 1
        if self._count >= self.max_steps and not obs.done:
            obs = obs.model_copy(
                update={"truncated": True, "info": {**obs.info, "truncated_reason": "step_limit"}}
            )
        return obs

    def snapshot(self) -> object:
        return (self._count, self.env.snapshot())

    def restore(self, snapshot: object) -> None:
        if not isinstance(snapshot, tuple) or len(snapshot) != 2:  # pyright: ignore[reportUnknownArgumentType]
            raise ValueError("restore() takes a snapshot taken by this environment instance")
        count, inner = snapshot  # pyright: ignore[reportUnknownVariableType]
        self.env.restore(inner)
        self._count = int(count)  # pyright: ignore[reportUnknownArgumentType]


# Synonyms used by the perturbations. Keys are matched as whole words.
_VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "go to": ("move to", "walk to", "head to"),
    "go": ("move", "walk", "proceed"),
    "open": ("unlatch", "pry open"),
    "close": ("shut",),
    "take": ("grab", "pick up", "collect"),
    "put": ("place", "set", "drop"),
    "use": ("operate", "activate"),
    "examine": ("inspect", "study"),
    "inventory": ("check bag", "list items"),
    "look": ("look around", "survey"),
    "search": ("query", "find"),
    "click": ("press", "select"),
    "back": ("return", "previous"),
    "buy": ("purchase", "checkout"),
    "lookup": ("consult", "read"),
    "calculate": ("compute", "evaluate"),
    "finish": ("answer", "submit"),
    "turn": ("rotate", "spin"),
    "forward": ("advance", "step ahead"),
    "left": ("port",),
    "right": ("starboard",),
    "pickup": ("grab", "collect"),
    "drop": ("release", "set down"),
    "toggle": ("switch", "flip"),
    "done": ("finished", "complete"),
    "stop": ("halt", "end here"),
    "inc": ("increase", "up"),
    "dec": ("decrease", "down"),
}

_INSTRUCTION_FRAMES = (
    "{}",
    "Your goal: {}",
    "Here is what you need to do. {}",
    "Please accomplish the following. {}",
    "Objective - {}",
)

_WORD_SYNONYMS: dict[str, str] = {
    "buy": "purchase",
    "find": "locate",
    "put": "place",
    "reach": "get to",
    "answer": "respond to",
    "cheap": "inexpensive",
    "clean": "wash",
    "examine": "inspect",
    "under": "below",
    "less than": "below",
}

_DISTRACTORS = (
    "A faint humming comes from somewhere nearby.",
    "There is a dusty painting of a lighthouse on the wall.",
    "You notice a torn receipt on the floor.",
    "A cat statue stares at you from a corner.",
    "A half-empty cup of tea sits forgotten here.",
    "A poster advertises a concert that ended years ago.",
    "You see a brass bell that does not seem to ring.",
)


def _sub_words(text: str, mapping: dict[str, str]) -> str:
    if not mapping:
        return text
    keys = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], text)


class Perturb(Wrapper):
    """Seeded, named perturbations of an environment's surface (see module docstring).

    ``seed`` is combined with each task's id, so every task is perturbed
    differently but reproducibly. ``info['perturbations']`` lists what is on.
    ``last_observation`` is the perturbed observation the agent was shown.
    """

    def __init__(
        self,
        env: Environment,
        perturbations: Sequence[Perturbation] = PERTURBATIONS,
        seed: int = 0,
        n_distractors: int = 2,
    ) -> None:
        unknown = [p for p in perturbations if p not in ALL_PERTURBATIONS]
        if unknown:
            raise ValueError(
                f"unknown perturbation(s) {unknown}; choose from {list(ALL_PERTURBATIONS)}"
            )
        if "inject_instruction" in perturbations and not env.third_party_text:
            raise ValueError(_injection.refusal(env.env_id))
        super().__init__(env)
        self.perturbations: tuple[Perturbation, ...] = tuple(dict.fromkeys(perturbations))
        self.seed = seed
        self.n_distractors = n_distractors
        self._rng = random.Random(seed)
        self._rename: dict[str, str] = {}  # original verb -> shown verb
        self._unrename: dict[str, str] = {}  # shown verb -> original verb
        self._instruction: tuple[str, str] | None = None
        self._distractors: list[str] = []
        self._inject_at: int | None = None
        self._injection: _injection.Injection | None = None
        self._last: Observation | None = None
        self._t = 0

    # ---- surface transforms --------------------------------------------------

    def _show(self, text: str) -> str:
        if self._instruction and self._instruction[0] in text:
            text = text.replace(self._instruction[0], self._instruction[1])
        if self._rename:
            help_text = self.env.action_help
            if help_text and help_text in text:
                text = text.replace(help_text, self._rename_in(help_text))
            # Rename only where the text shows an action, as a whole token, so
            # object names that contain a verb ("backpack") stay intact.
            actions = {a: self._rename_action(a) for a in self.env.available_actions()}
            changed = sorted((a for a in actions if actions[a] != a), key=len, reverse=True)
            # "verb[" is unambiguous action syntax wherever it appears (grammar hints).
            for verb, shown in self._rename.items():
                text = re.sub(r"(?<![\w])" + re.escape(verb) + r"\[", shown + "[", text)
            if changed:
                pattern = re.compile(
                    r"(?<![\w])(" + "|".join(re.escape(a) for a in changed) + r")(?![\w])"
                )
                text = pattern.sub(lambda m: actions[m.group(1)], text)
        return text

    def _rename_in(self, text: str) -> str:
        return _sub_words(text, self._rename)

    def _rename_action(self, action: str) -> str:
        for verb in sorted(self._rename, key=len, reverse=True):
            if action == verb or action.startswith((verb + " ", verb + "[")):
                return self._rename[verb] + action[len(verb) :]
        return action

    def _to_original(self, action: str) -> str:
        stripped = " ".join(action.split())
        for shown in sorted(self._unrename, key=len, reverse=True):
            if stripped == shown or stripped.startswith((shown + " ", shown + "[")):
                return self._unrename[shown] + stripped[len(shown) :]
            original = self._unrename[shown]
            if stripped == original or stripped.startswith((original + " ", original + "[")):
                # The original verb is not accepted under perturbation: that is the test.
                return "\x00renamed:" + stripped
        return action

    def _observe(self, obs: Observation) -> Observation:
        planted = self._plant(obs)
        text = self._show(planted.text if planted else obs.text)
        if planted:
            text = text.replace(_injection.MARK, planted.instruction)
        if "distractors" in self.perturbations and self._distractors:
            text = text.rstrip() + "\n" + " ".join(self._distractors)
        info = {**obs.info, "perturbations": list(self.perturbations)}
        if self._injection is not None:
            info["injection"] = self._injection.info()
        return obs.model_copy(update={"text": text, "info": info})

    def _plant(self, obs: Observation) -> _injection.Plant | None:
        """Plant the injection in the first valid observation with third-party text."""
        inj, task = self._injection, self.env.task
        if inj is None or inj.planted_at is not None or task is None:
            return None
        if obs.done or obs.info.get("invalid"):
            return None
        step = int(obs.info.get("step", 0))
        key = f"{self.seed}:{task.task_id}:{step}"
        planted = _injection.plant(self.env, obs, key, self._rename_action)
        if planted is not None:
            inj.attacker_action, inj.planted_at = planted.attacker_action, step
        return planted

    @property
    def action_help(self) -> str:
        return self._rename_in(self.env.action_help)

    @property
    def last_observation(self) -> Observation | None:
        return self._last

    def _emit(self, obs: Observation) -> Observation:
        self._last = obs
        return obs

    # ---- contract ------------------------------------------------------------

    def reset(self, task: Task) -> Observation:
        rng = random.Random(f"perturb:{self.seed}:{task.task_id}")
        self._rng = rng
        self._rename, self._unrename = {}, {}
        if "rename_verbs" in self.perturbations:
            used: set[str] = set()
            originals = set(self.env.action_verbs)
            for verb in sorted(self.env.action_verbs, key=len, reverse=True):
                options = [
                    s for s in _VERB_SYNONYMS.get(verb, ()) if s not in used and s not in originals
                ]
                if options:
                    shown = rng.choice(options)
                    used.add(shown)
                    self._rename[verb] = shown
                    self._unrename[shown] = verb
        self._instruction = None
        if "paraphrase_instruction" in self.perturbations and task.instruction:
            frame = rng.choice(_INSTRUCTION_FRAMES[1:])
            body = _sub_words(task.instruction, _WORD_SYNONYMS)
            body = body[:1].lower() + body[1:]  # it now continues the frame's sentence
            self._instruction = (task.instruction, frame.format(body))
        self._distractors = []
        if "distractors" in self.perturbations:
            k = min(self.n_distractors, len(_DISTRACTORS))
            self._distractors = rng.sample(_DISTRACTORS, k)
        self._t = 0
        self._inject_at = None
        if "inject_mistake" in self.perturbations:
            self._inject_at = random.Random(f"inject:{self.seed}:{task.task_id}").choice(
                INJECT_STEPS
            )
        self._injection = (
            _injection.Injection() if "inject_instruction" in self.perturbations else None
        )
        return self._emit(self._observe(self.env.reset(task)))

    def _wrong_action(self, intended: str) -> str | None:
        """A valid action that is not the expert's and does not end the episode."""
        try:
            right = self.env.expert()
        except Exception:  # an environment without an expert: any other action is "wrong"
            right = intended
        candidates = [a for a in self.env.available_actions() if a not in (right, intended)]
        random.Random(f"wrong:{self.seed}:{self._t}:{intended}").shuffle(candidates)
        snap = self.env.snapshot()
        try:
            for action in candidates[:12]:
                obs = self.env.step(action)
                ok = not (obs.done or obs.info.get("invalid"))
                self.env.restore(snap)
                if ok:
                    return action
        finally:
            self.env.restore(snap)
        return None

    def step(self, action: str) -> Observation:
        original = self._to_original(action)
        t, self._t = self._t, self._t + 1
        if t == self._inject_at:
            intended = "" if original.startswith("\x00") else original
            wrong = self._wrong_action(intended)
            if wrong is not None:
                obs = self._observe(self.env.step(wrong))
                shown = self._rename_action(wrong)
                note = f"(Your action was not carried out. Instead, you did: {shown}.)\n"
                info = {**obs.info, "injected_action": wrong, "intended_action": action}
                return self._emit(obs.model_copy(update={"text": note + obs.text, "info": info}))
        if original.startswith("\x00renamed:"):
            obs = self.env.step("\x00")  # counted as malformed by the inner env
            hint = (
                f"Unknown action {action.strip()!r}. In this environment the verbs are: "
                + ", ".join(f"{v!r}" for v in self._unrename)
                + "."
            )
            # The hint is built after _observe: it must show the typed action and
            # the verb list verbatim, not pass them through the renaming again.
            return self._emit(self._observe(obs).model_copy(update={"text": hint}))
        obs = self.env.step(original)
        inj = self._injection
        if inj is not None and _injection.executed(inj, original, obs):
            inj.executed, inj.executed_at = True, int(obs.info.get("step", self._t))
        return self._emit(self._observe(obs))

    def available_actions(self) -> list[str]:
        actions = [self._rename_action(a) for a in self.env.available_actions()]
        if "shuffle_actions" in self.perturbations:
            last = self.env.last_observation
            key = (
                f"{self.seed}:{last.info.get('step') if last else None}:{last.text if last else ''}"
            )
            random.Random(key).shuffle(actions)
        return actions

    def expert(self) -> str:
        return self._rename_action(self.env.expert())

    def snapshot(self) -> object:
        injection = self._injection.copy() if self._injection is not None else None
        return (self.env.snapshot(), self._t, injection, self._last)

    def restore(self, snapshot: object) -> None:
        inner, t, injection, last = snapshot  # pyright: ignore[reportGeneralTypeIssues]
        self.env.restore(inner)
        self._t = int(t)  # pyright: ignore[reportUnknownArgumentType]
        self._injection = injection.copy() if injection is not None else None
        self._last = last
