"""``refine``: trajectories that make a mistake, see the feedback, and recover (AgentRefine).

Follows AgentRefine (Fu et al., "AgentRefine: Enhancing Agent Generalization
through Refinement Tuning", 2025): the agent's erroneous turns stay in the
context with the environment's feedback but carry no loss (``train=False``);
the corrected turn and the rest of the trajectory carry loss. AgentRefine has a
strong LLM write whole trajectories and checks them with a simulated
environment; here the environment is real and the correction comes from a
**teacher**:

- ``teacher="expert"``: the environment's oracle. The episode's actions are
  replayed on ``make(env_id)`` (its observations checked against the stored
  ones) up to the erroneous step; the oracle's action from that state is the
  correction, written as ``Thought: ...\\nAction: <action>``, and the oracle
  finishes the task.
- a :class:`~palaestra.model.Model` (``--teacher openai/...``): it sees the
  same ReAct conversation, ending with the error feedback, and writes the
  corrected turn; the continuation comes from the oracle (default) or the
  teacher. Samples whose correction is malformed or invalid, or that do not
  end in success, are dropped and counted.

Error types map to :class:`~palaestra.trajectory.Step` fields:
``invalid_action`` (the environment rejected the action: ``invalid_action``,
whether ``info["invalid_kind"]`` is ``"malformed"`` or ``"invalid_action"``),
``format_error`` (the reply had no parsable ``Action:`` line), ``loop`` (``repeated_action``) and ``wrong_action`` (a valid action
other than the oracle's that did not raise progress — the "wrong object"
case). Earlier turns of the agent that match the oracle keep their loss; the
others stay in the context without it. ``max_errors`` is how many erroneous
turns a sample keeps in context: the sample is cut at that error (or the last
one) and corrected there.

:func:`build_refine_synthetic` needs no model: it injects a wrong turn into a
successful (expert) trajectory at a random step — a valid but wrong action,
an impossible one, a malformed reply, or a repeat — records the environment's
real feedback, and lets the oracle correct and finish. This is the data of
the experiment in FACTS.md that raised recovery after a wrong action.

Replays run under the wrappers the episode ran under (:func:`replay_env`):
the run's ``perturbations`` (``palaestra rollout --perturb``) or, for an eval
run of a perturbed suite, the ones the task itself carries (``Task.params``,
see :mod:`palaestra.eval._suites`), with their seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from palaestra.agent import ExpertAgent, format_error_feedback, parse_react, template
from palaestra.data._common import (
    DatasetCard,
    Encoder,
    Message,
    Source,
    conversation_stats,
    load_sources,
    msg,
    source_names,
    to_dataset,
    tokenizer_name,
)
from palaestra.env import Environment, Observation, Perturbation, Task, make
from palaestra.eval import split_perturbation
from palaestra.model import ChatMessage, GenerationConfig, Model
from palaestra.trajectory import Episode, Step

if TYPE_CHECKING:
    from datasets import Dataset

ErrorType = Literal["invalid_action", "format_error", "loop", "wrong_action"]
ERROR_TYPES: tuple[ErrorType, ...] = get_args(ErrorType)

_WHY: dict[ErrorType, str] = {
    "invalid_action": "That action is not possible here.",
    "format_error": "I must reply with one Thought line and one Action line.",
    "loop": "Repeating the same action will not help.",
    "wrong_action": "That did not bring me closer to the goal.",
}
_NONSENSE = ("xyzzy", "the purple elephant", "nowhere at all")


def act_style(messages: Sequence[Message]) -> bool:
    """Whether a conversation uses the ``act`` prompt (replies are the Action line alone)."""
    return bool(messages) and messages[0]["content"].startswith(template("react_act").strip())


def correction_text(action: str, kinds: Iterable[ErrorType] = (), *, act: bool = False) -> str:
    """The oracle's corrected turn: a short reflection on the error, then the action.

    In the ``act`` prompt style the turn is the ``Action:`` line alone, like every
    other reply of that style (the environment's feedback is the only reflection).
    """
    if act:
        return f"Action: {action}"
    why = " ".join(_WHY[k] for k in ERROR_TYPES if k in set(kinds))
    thought = ExpertAgent.thought.format(action=action)
    return f"Thought: {why + ' ' if why else ''}{thought}\nAction: {action}"


def step_errors(step: Step, expert_action: str | None, progress_before: float) -> set[ErrorType]:
    """Which error types a stored step shows (``expert_action``: the oracle's at that state)."""
    kinds: set[ErrorType] = set()
    if step.format_error is not None:
        kinds.add("format_error")
    elif step.invalid_action:
        kinds.add("invalid_action")
    if step.repeated_action:
        kinds.add("loop")
    if (
        not kinds
        and step.action is not None
        and expert_action is not None
        and step.action != expert_action
        and step.progress <= progress_before
        and not (step.terminated and step.info.get("success"))
    ):
        kinds.add("wrong_action")
    return kinds


class Teacher:
    """Writes the corrected turn given the conversation so far (which ends with the feedback)."""

    name = "expert"

    def correct(
        self, env: Environment, messages: Sequence[Message], kinds: Iterable[ErrorType]
    ) -> str:
        return correction_text(env.expert(), kinds, act=act_style(messages))


class ModelTeacher(Teacher):
    """A (stronger) model as the teacher; it sees the ReAct prompt and the error feedback."""

    def __init__(self, model: Model, generation: GenerationConfig | None = None) -> None:
        self.model = model
        self.name = model.id or "model"
        self.generation = generation or GenerationConfig(
            max_new_tokens=128, temperature=0.0, stop=["\nObservation"]
        )

    def correct(
        self, env: Environment, messages: Sequence[Message], kinds: Iterable[ErrorType]
    ) -> str:
        conv = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        return self.model.generate([conv], self.generation)[0].text.strip()


@dataclass
class _Result:
    messages: list[Message] | None
    reason: str
    kinds: list[str]
    n_errors: int = 0


def _finish(
    env: Environment,
    messages: list[Message],
    teacher: Teacher,
    kinds: set[ErrorType],
    continuation: Literal["expert", "teacher"],
    max_steps: int,
    correction: bool = True,
) -> str:
    """Append the correction and the continuation; returns "" on success or why it failed.

    ``correction=False`` keeps the corrected turn in the context without loss (the
    ablation "wrong turns in context, no correction"); the continuation keeps its loss.
    """
    act = act_style(messages)
    text = teacher.correct(env, messages, kinds)
    for turn in range(max_steps):
        parsed = parse_react(text)
        messages.append(msg("assistant", text, correction or turn > 0))
        if parsed.action is None:
            return "bad_correction" if turn == 0 else "bad_continuation"
        obs = env.step(parsed.action)
        messages.append(msg("user", obs.text))
        if obs.info.get("invalid"):
            return "bad_correction" if turn == 0 else "bad_continuation"
        if obs.terminated:
            return "" if obs.info.get("success") else "not_solved"
        if obs.truncated:
            return "not_solved"
        if continuation == "teacher":
            text = teacher.correct(env, messages, ())
        else:
            text = correction_text(env.expert(), act=act)
    return "not_solved"


def replay_env(task: Task, perturbations: Sequence[Perturbation] = ()) -> tuple[Environment, Task]:
    """The environment ``task``'s episode ran on, and the task to reset it with.

    A perturbed suite task plays its plain task under the perturbations its
    params carry (exactly as :class:`~palaestra.eval.SuiteEnv` does); a plain
    task plays under the run's ``perturbations``.
    """
    plain, carried, seed = split_perturbation(task)
    if carried and perturbations and set(carried) != set(perturbations):
        raise ValueError(
            f"task {task.task_id} carries perturbations {list(carried)} but its run was "
            f"configured with {list(perturbations)}"
        )
    perts = list(carried or perturbations)
    env = make(task.env_id, perturbations=perts or None, perturbation_seed=seed)
    return env, plain


def _replay_step(env: Environment, step: Step) -> Observation | None:
    """Re-apply a stored step; None when the environment answers differently (not replayable)."""
    if step.action is None:
        return Observation(text=step.observation)
    obs = env.step(step.action)
    return obs if obs.text == step.observation else None


def refine_episode(
    ep: Episode,
    teacher: Teacher,
    *,
    types: Sequence[ErrorType] = ERROR_TYPES,
    max_errors: int = 1,
    continuation: Literal["expert", "teacher"] = "expert",
    perturbations: Sequence[Perturbation] = (),
    max_steps: int = 50,
    correction: bool = True,
) -> _Result:
    """One refinement sample from a stored episode (see the module docstring)."""
    if ep.outcome == "error" or len(ep.messages) < 2 or not ep.steps:
        return _Result(None, "no_steps", [])

    def fresh() -> Environment | None:
        env, task = replay_env(ep.task, perturbations)
        first = env.reset(task)
        return env if first.text == ep.messages[1].content else None

    # pass 1: find the erroneous steps (the oracle's action is needed at each state)
    env = fresh()
    if env is None:
        return _Result(None, "replay_mismatch", [])
    found: list[tuple[int, set[ErrorType], bool]] = []  # (index, kinds, matches the oracle)
    progress = 0.0
    for step in ep.steps:
        expert = env.expert()
        kinds = step_errors(step, expert, progress) & set(types)
        if _replay_step(env, step) is None:
            return _Result(None, "replay_mismatch", [])
        found.append((step.index, kinds, step.action == expert))
        progress = step.progress
    errors = [i for i, (_, kinds, _) in enumerate(found) if kinds]
    if not errors:
        return _Result(None, "no_error", [])
    cut = errors[min(max_errors, len(errors)) - 1]
    if ep.steps[cut].terminated or ep.steps[cut].truncated:
        return _Result(None, "ended_by_error", [])

    # pass 2: the context up to the cut, then the teacher
    env = fresh()
    assert env is not None
    messages = [msg(m.role, m.content) for m in ep.messages[:2]]
    used: list[str] = []
    for k in range(cut + 1):
        step = ep.steps[k]
        _replay_step(env, step)
        _, kinds, ok = found[k]
        messages.append(msg("assistant", step.raw_output, bool(ok and not kinds)))
        messages.append(msg("user", step.observation))
        used += sorted(kinds)
    why = _finish(env, messages, teacher, found[cut][1], continuation, max_steps, correction)
    if why:
        return _Result(None, why, used)
    return _Result(messages, "ok", used, n_errors=sum(1 for i in errors if i <= cut))


def _card(
    builder: str,
    srcs: list[Source],
    params: dict[str, Any],
    counts: dict[str, int],
    rows: list[dict[str, Any]],
    tokenizer: Encoder | None,
) -> DatasetCard:
    counts["rows"] = len(rows)
    return DatasetCard(
        builder=builder,
        sources=source_names(srcs),
        parameters=params,
        counts=counts,
        tokens=conversation_stats([r["messages"] for r in rows], tokenizer),
        tokenizer=tokenizer_name(tokenizer),
    )


def build_refine(
    run_dirs: Iterable[str | Path] | None = None,
    *,
    sources: list[Source] | None = None,
    teacher: Teacher | Model | None = None,
    types: Sequence[ErrorType] = ERROR_TYPES,
    max_errors: int = 1,
    continuation: Literal["expert", "teacher"] = "expert",
    max_steps: int = 50,
    correction: bool = True,
    tokenizer: Encoder | None = None,
) -> tuple[Dataset, DatasetCard]:
    """Refinement data from the runs' episodes that contain an error (see the module docstring).

    ``correction=False`` is the ablation "wrong turns in context but no correction": the
    corrected turn stays in the sample without loss; the rest of the recovery keeps it.
    """
    if max_errors < 1:
        raise ValueError("max_errors must be at least 1")
    bad = [t for t in types if t not in ERROR_TYPES]
    if bad:
        raise ValueError(f"unknown error types {bad}; choose from {', '.join(ERROR_TYPES)}")
    if teacher is None:
        teacher = Teacher()
    elif isinstance(teacher, Model):
        teacher = ModelTeacher(teacher)
    srcs = sources if sources is not None else load_sources(run_dirs or [])
    counts: dict[str, int] = {"episodes": 0}
    rows: list[dict[str, Any]] = []
    for src in srcs:
        for ep in src.episodes:
            counts["episodes"] += 1
            res = refine_episode(
                ep,
                teacher,
                types=types,
                max_errors=max_errors,
                continuation=continuation,
                perturbations=src.perturbations,
                max_steps=max_steps,
                correction=correction,
            )
            counts[res.reason] = counts.get(res.reason, 0) + 1
            if res.messages is None:
                continue
            counts["errors_in_context"] = counts.get("errors_in_context", 0) + res.n_errors
            rows.append(
                {
                    "messages": res.messages,
                    "task_id": ep.task.task_id,
                    "env_id": ep.task.env_id,
                    "source": src.run_id,
                    "error_types": res.kinds,
                    "n_errors": res.n_errors,
                    "teacher": teacher.name,
                }
            )
    params = {
        "teacher": teacher.name,
        "types": list(types),
        "max_errors": max_errors,
        "continuation": continuation,
        "correction": correction,
        "max_steps": max_steps,
    }
    return to_dataset(rows), _card("refine", srcs, params, counts, rows, tokenizer)


# ---- synthetic refinement from expert trajectories -------------------------------------


def _inject(
    env: Environment, kind: ErrorType, previous: str | None, rng: random.Random, act: bool = False
) -> tuple[str, str] | None:
    """Apply one wrong turn of ``kind``; returns (reply text, feedback) or None if impossible.

    A wrong turn that would end the episode is undone (restore) and not used.
    """
    if kind == "format_error":
        text = f"I think I should {env.expert()} now"
        parsed = parse_react(text)
        return text, format_error_feedback("act" if act else "full", parsed.error or "")
    expert = env.expert()
    if kind == "wrong_action":
        candidates = [a for a in env.available_actions() if a != expert]
    elif kind == "loop":
        candidates = [previous] if previous else []
    else:
        actions = env.available_actions() or [expert]
        a = rng.choice(actions)
        junk = rng.choice(_NONSENSE)
        candidates = [a[: a.index("[")] + f"[{junk}]" if "[" in a else f"{a.split()[0]} {junk}"]
    rng.shuffle(candidates)
    for action in candidates[:5]:
        snap = env.snapshot()
        obs = env.step(action)
        invalid = bool(obs.info.get("invalid"))
        if obs.terminated or obs.truncated or (kind == "invalid_action") != invalid:
            env.restore(snap)
            continue
        reply = f"Action: {action}" if act else f"Thought: I will try {action}.\nAction: {action}"
        return reply, obs.text
    return None


def build_refine_synthetic(
    run_dirs: Iterable[str | Path] | None = None,
    *,
    sources: list[Source] | None = None,
    types: Sequence[ErrorType] = ("wrong_action", "invalid_action", "format_error"),
    per_episode: int = 1,
    threshold: float = 1.0,
    seed: str = "refine",
    max_steps: int = 50,
    tokenizer: Encoder | None = None,
) -> tuple[Dataset, DatasetCard]:
    """Inject one wrong turn into successful trajectories; the oracle corrects and finishes.

    ``per_episode`` samples per trajectory, each at a random step with a random
    error type from ``types`` (seeded by ``seed``, the task and the sample index).
    """
    srcs = sources if sources is not None else load_sources(run_dirs or [])
    counts: dict[str, int] = {"episodes": 0, "successful": 0}
    rows: list[dict[str, Any]] = []
    for src in srcs:
        for ep in src.episodes:
            counts["episodes"] += 1
            if ep.outcome == "error" or ep.score < threshold or not ep.steps:
                continue
            counts["successful"] += 1
            for k in range(per_episode):
                rng = random.Random(f"palaestra-refine:{seed}:{ep.episode_id}:{k}")
                res = _synth_one(ep, src.perturbations, types, rng, max_steps)
                counts[res.reason] = counts.get(res.reason, 0) + 1
                if res.messages is None:
                    continue
                rows.append(
                    {
                        "messages": res.messages,
                        "task_id": ep.task.task_id,
                        "env_id": ep.task.env_id,
                        "source": src.run_id,
                        "error_types": res.kinds,
                        "n_errors": 1,
                        "teacher": "expert",
                    }
                )
    params = {
        "mode": "synthetic",
        "types": list(types),
        "per_episode": per_episode,
        "threshold": threshold,
        "seed": seed,
    }
    return to_dataset(rows), _card("refine", srcs, params, counts, rows, tokenizer)


def _synth_one(
    ep: Episode,
    perturbations: Sequence[Perturbation],
    types: Sequence[ErrorType],
    rng: random.Random,
    max_steps: int,
) -> _Result:
    at = rng.randrange(len(ep.steps))
    kinds = list(types)
    rng.shuffle(kinds)
    env, task = replay_env(ep.task, perturbations)
    if env.reset(task).text != ep.messages[1].content:
        return _Result(None, "replay_mismatch", [])
    messages = [msg(m.role, m.content) for m in ep.messages[:2]]
    for step in ep.steps[:at]:
        ok = step.action == env.expert() and step.action is not None
        if _replay_step(env, step) is None:
            return _Result(None, "replay_mismatch", [])
        messages.append(msg("assistant", step.raw_output, ok))
        messages.append(msg("user", step.observation))
    previous = ep.steps[at - 1].action if at else None
    for kind in kinds:
        wrong = _inject(env, kind, previous, rng, act_style(messages))
        if wrong is None:
            continue
        messages += [msg("assistant", wrong[0], False), msg("user", wrong[1])]
        why = _finish(env, messages, Teacher(), {kind}, "expert", max_steps)
        return _Result(None if why else messages, why or "ok", [kind], 1)
    return _Result(None, "no_injection", [])
