"""Text corpora for the ``tiny`` model, generated from the built-in environments and agent prompts.

The model layer trains on text it is given (``palaestra.model``'s
``build_tiny`` and ``pretrain_on_documents``); which text that is — data about
environments and prompts — is built here, above the environments, the agents
and the model:

- :func:`tiny_corpus`: the text ``tiny``'s tokenizer is trained on. Task
  instructions, first observations, expert trajectories, the feedback on a
  malformed action, the environments' descriptions, and the agent prompt
  files, so environment words are mostly single tokens. Held-out tasks are
  left out: their vocabulary is meant to be unseen. A family that fails to
  import is skipped, and ToyEnv's text is always included. An explicit list of
  families (:data:`palaestra.env.BUILTIN_FAMILIES`): installed plugins never
  change the built-in model.
- :func:`pretrain_corpus` / :func:`pretrain_documents`: the pretraining corpus
  (``palaestra model build-tiny --pretrain``; its recipe is
  ``palaestra.model.PretrainConfig``): episodes of the built-in families, train
  split only, played by the expert, a noisy expert and a random policy, rendered
  as the chat an agent sees, optionally interleaved with :func:`synthetic_doc`
  copy-and-lookup documents.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

from pydantic import JsonValue

from palaestra.agent import PromptStyle, ReactAgent, format_error_feedback
from palaestra.env import (
    BUILTIN_FAMILIES,
    Difficulty,
    Environment,
    Observation,
    Split,
    ToyEnv,
    make,
    run_episode,
    tasks,
)
from palaestra.env.families.house import TRAIN_VOCAB
from palaestra.model import PretrainConfig, PretrainPolicy

log = logging.getLogger("palaestra.data")

# Words of the chat format and of agent replies, whatever the prompts say.
_FORMAT_TEXT = (
    "system user assistant tool\n"
    "Thought: Action: Observation: Answer: Reflection: Plan:\n"
    "0 1 2 3 4 5 6 7 8 9 . , : ; ? ! ( ) [ ] { } < > = + - * / ' \" _\n"
)
_TASKS_PER_SPLIT = 12
# Held-out tasks use vocabulary meant to be unseen, so the tokenizer never sees them.
_SPLITS: tuple[Split, ...] = ("train", "test")


# ---- the tokenizer corpus ----------------------------------------------------------------


def _episode_text(env_id: str) -> list[str]:
    """Text of one family: descriptions, tasks, expert episodes, a malformed-action reply."""
    texts: list[str] = []

    def recording_expert(env: Environment, obs: Observation) -> str:
        action = env.expert()
        texts.extend([obs.text, action, " ".join(env.available_actions())])
        return action

    env = make(env_id)
    try:
        base = env.unwrapped
        texts += [base.description, base.action_help]
        for split in _SPLITS:
            suite = tasks(env_id, split=split, n=_TASKS_PER_SPLIT)
            for i, task in enumerate(suite):
                texts.append(task.instruction)
                if i == 0:
                    env.reset(task)
                    texts.append(env.step("xyzzy").text)
                run_episode(env, task, recording_expert, max_steps=200)
                if env.last_observation is not None:
                    texts.append(env.last_observation.text)
    finally:
        env.close()
    return texts


def _prompt_files() -> list[str]:
    try:
        folder = files("palaestra.agent").joinpath("prompts")
        return [
            f.read_text()
            for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".txt")
        ]
    except Exception as e:  # the agent package may be mid-change; the model still builds
        log.debug("tiny corpus: no agent prompts (%s)", e)
        return []


def tiny_corpus() -> list[str]:
    """The tokenizer's training text (deterministic for a given Palaestra version)."""
    # The format words are repeated so that BPE (min. frequency 2) merges them.
    texts = [_FORMAT_TEXT] * 4 + _prompt_files()
    # An explicit list: installed plugins must never change the built-in model.
    for env_id in sorted(BUILTIN_FAMILIES):
        try:
            texts += _episode_text(env_id)
        except Exception as e:  # a family that does not import (yet) must not block the model
            log.warning("tiny corpus: skipping %s (%s: %s)", env_id, type(e).__name__, e)
    toy = ToyEnv()
    toy_texts = [toy.description, toy.action_help]

    def recording(env: Environment, obs: Observation) -> str:
        toy_texts.append(obs.text)
        return env.expert()

    for split in _SPLITS:
        for seed in range(_TASKS_PER_SPLIT):
            task = toy.make_task(seed, split, ("easy", "medium", "hard")[seed % 3])
            run_episode(toy, task, recording)
    texts += toy_texts
    return [t for t in texts if t]


# ---- the pretraining corpus --------------------------------------------------------------


def _house_params(rng: random.Random) -> dict[str, JsonValue]:
    params: dict[str, JsonValue] = {}
    if rng.random() < 0.6:
        params["contents_visible"] = True
    if rng.random() < 0.4:
        params["target_hint"] = True
    if rng.random() < 0.4:
        params["objects"] = 12
    if rng.random() < 0.5:
        params["task_type"] = "pick"
    return params


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    keys = [k for k, w in weights.items() if w > 0]
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _episode_messages(
    env: Environment,
    task: Any,
    policy: PretrainPolicy,
    prompt: PromptStyle,
    config: PretrainConfig,
    seed: str,
) -> list[dict[str, str]]:
    rng = random.Random(seed)
    first = env.reset(task)
    system = ReactAgent(prompt=prompt).system_prompt(env, task)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": first.text}]
    for _ in range(config.max_episode_steps):
        actions = env.available_actions()
        if policy == "random" or (policy == "noisy" and rng.random() < config.noise):
            if policy == "random" and rng.random() < 0.05:
                reply, action = "I am not sure.", None  # a malformed reply and its feedback
            else:
                action = rng.choice(actions) if actions else "look"
                reply = f"Action: {action}"
        else:
            action = env.expert()
            reply = f"Action: {action}"
        if prompt != "act" and action is not None:
            reply = f"Thought: I will {action}.\n{reply}"
        messages.append({"role": "assistant", "content": reply})
        if action is None:
            messages.append({"role": "user", "content": format_error_feedback(prompt, "no Action")})
            continue
        obs = env.step(action)
        messages.append({"role": "user", "content": obs.text})
        if obs.done:
            break
    return messages


def synthetic_doc(rng: random.Random) -> str:
    """One synthetic document: lines where the next name can only be copied from context.

    Copying (induction) forms late from natural text (after billions of tokens in
    real LMs); text whose names are random makes copying the only way to lower the
    loss, so the circuit forms in hundreds of steps. The shapes are house-v1's own.
    """
    objects = [k.name for k in TRAIN_VOCAB.objects.values()]
    recs = TRAIN_VOCAB.receptacles

    def obj() -> str:
        return f"{rng.choice(objects)} {rng.randint(1, 3)}"

    def rec() -> tuple[str, str]:
        kind = rng.choice(list(recs))
        return f"{kind} {rng.randint(1, 3)}", recs[kind].prep

    lines: list[str] = []
    kind = rng.randrange(4)
    for _ in range(rng.randint(2, 4)):
        if kind == 0:  # facts, then queries that repeat them
            facts = [(obj(), *rec()) for _ in range(rng.randint(3, 7))]
            lines += [f"The {o} is {p} the {r}." for o, r, p in facts]
            for o, r, p in rng.sample(facts, min(3, len(facts))):
                lines.append(f"Where is the {o}? The {o} is {p} the {r}. Action: go to {r}")
        elif kind == 1:  # a room view, then where to go for one of its objects
            view: list[tuple[str, str, list[str]]] = []
            for _ in range(rng.randint(3, 6)):
                r, p = rec()
                view.append((r, p, [obj() for _ in range(rng.randint(1, 3))]))
            lines.append(
                " ".join(
                    f"{p.capitalize()} the {r}, you see {', '.join('a ' + o for o in os)}."
                    for r, p, os in view
                )
            )
            for r, _, os in rng.sample(view, min(2, len(view))):
                o = rng.choice(os)
                lines.append(f"Your task is to: find the {o}. Action: go to {r}")
                lines.append(f"Action: take {o} from {r}")
        elif kind == 2:  # an action and the observation that echoes it
            o, (r, _), (r2, p2) = obj(), rec(), rec()
            lines.append(f"Action: take {o} from {r}\nYou pick up the {o} from the {r}.")
            lines.append(f"Action: go to {r2}\nYou arrive at {r2}.")
            lines.append(f"Action: put {o} {p2} {r2}\nYou put the {o} {p2} the {r2}.")
        else:  # a list, repeated
            items = ", ".join(f"a {obj()}" for _ in range(rng.randint(4, 10)))
            lines.append(f"You see {items}. Again: you see {items}.")
    return "\n".join(lines)


def pretrain_corpus(config: PretrainConfig) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The episodes of the pretraining corpus as (family, chat messages), deterministic for a config."""
    rng = random.Random(f"pretrain:{config.seed}")
    envs: dict[str, Environment] = {}
    difficulties: tuple[Difficulty, ...] = ("easy", "medium", "hard")
    try:
        for i in range(config.episodes):
            family = _pick(rng, config.family_weights)
            env = envs.get(family) or envs.setdefault(family, make(family))
            params = _house_params(rng) if family == "house-v1" else {}
            difficulty = rng.choices(difficulties, weights=[0.5, 0.3, 0.2])[0]
            # Seeds far from the ones demos and curricula draw (0, 1, 2...): a different
            # sample of the same train distribution.
            task = env.unwrapped.make_task(1_000_000 + i, "train", difficulty, **params)
            policy: PretrainPolicy = _pick(rng, config.policy_weights)
            prompt = _pick(rng, config.prompts)
            seed = f"{config.seed}:{i}"
            yield family, _episode_messages(env, task, policy, prompt, config, seed)
    finally:
        for env in envs.values():
            env.close()


def pretrain_documents(
    config: PretrainConfig,
) -> Iterator[tuple[str, list[dict[str, str]] | str]]:
    """The documents ``pretrain_on_documents`` trains on: the episodes of :func:`pretrain_corpus`,
    each followed, with probability ``config.synthetic`` (repeatedly), by a :func:`synthetic_doc`.
    """
    synth_rng = random.Random(f"synthetic:{config.seed}")
    for family, messages in pretrain_corpus(config):
        yield family, messages
        # Interleaved, so copying is learnt together with the environments' language.
        while synth_rng.random() < config.synthetic:
            yield "synthetic", synthetic_doc(synth_rng)
