"""Tool mode of ``train rl``: GRPO/RLOO over TRL's own tool-calling loop and the ``environment_factory`` adapter.

Engine mode (:mod:`palaestra.train._rl`) plays episodes with Palaestra's
rollout engine; tool mode hands the whole episode to TRL 1.16: the prompt is
one user message (the ``act`` tool and the action grammar, then the task's
first observation, appended by the trainer after ``reset``); the model
answers with tool calls, TRL executes each ``act(action)`` on a
:class:`~palaestra.env.adapters.trl.PalaestraTRLEnv` (one environment step)
and appends the result as a ``tool`` message, up to ``max_turns`` rounds
(TRL's ``max_tool_calling_iterations``). Tool results carry no loss (TRL's
``tool_mask``). Rewards are the adapter's ``get_reward`` (the episode's score;
``None`` after an ``EnvError``) and, with ``progress_weight``, the adapter's
progress; an ORM is not supported here (the config refuses it).

Our models' chat templates cannot call tools, so the trainer gets a copy of the
tokenizer with the family's tool-calling template and reply parser
(:func:`palaestra.model.tool_template_for`); the tokenizer saved with the
output keeps the model's own template.

Overflow. When a tool result would push the completion past
``max_completion_length`` (``max_length``), TRL drops the result *after* the
environment stepped and ends the rollout; left alone its reward would be the
partial episode's score — usually 0 — for a model that never saw its last
observation. :class:`ToolModeTrainer` finds such rollouts after generation
(a result the adapter returned that is not in the conversation), marks them
unscorable (``None`` reward, no loss), warns once with the token counts, and
logs ``rl/overflow_rate``; a batch in which *every* rollout overflowed is a
budget no episode fits, and raises ``ValueError`` naming ``max_length``.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from palaestra.env import Environment, Task, make
from palaestra.env.adapters.trl import (
    PalaestraTRLEnv,
    dataset_of_tasks,
    tool_intro,
    trl_environment_factory,
)
from palaestra.model import tool_template_for
from palaestra.train._common import load_base, lora_config, resolve_model_path
from palaestra.train._rl_config import RLRunConfig, config_tasks

#: The adapter's one tool.
TOOL_NAME = "act"


def progress(
    completions: Sequence[Any], environments: Sequence[Any] | None = None, **_: Any
) -> list[float | None]:
    """The environment's progress in [0, 1] at the end of each rollout (``None`` when unscorable)."""
    envs = environments or [None] * len(completions)
    return [e.progress if isinstance(e, PalaestraTRLEnv) else None for e in envs]


def tool_tokenizer(tokenizer: Any) -> Any:
    """A copy of ``tokenizer`` that can render and parse tool calls, for the trainer only.

    A family with a Palaestra tool template (ChatML: ``tiny``; Gemma 3) gets it and
    its reply parser (``response_template``); any other tokenizer is copied as is,
    and TRL checks that its own template can call tools.
    """
    tok = copy.deepcopy(tokenizer)
    found = tool_template_for(getattr(tokenizer, "chat_template", None))
    if found is not None:
        _, jinja, parser = found
        tok.chat_template = jinja
        tok.response_template = copy.deepcopy(parser)
    return tok


# ---- overflow ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overflow:
    """A rollout whose last tool result(s) TRL dropped for want of completion budget."""

    row: int
    #: Tokens of the completion when the result was dropped (model and tool tokens).
    completion_tokens: int
    #: Tokens the dropped tool message(s) would have added.
    result_tokens: int
    #: ``max_completion_length`` (the config's ``max_length``).
    budget: int

    @property
    def needed(self) -> int:
        return self.completion_tokens + self.result_tokens

    def describe(self) -> str:
        return (
            f"a tool result of {self.result_tokens} tokens did not fit after "
            f"{self.completion_tokens} completion tokens ({self.needed} > max_length "
            f"{self.budget})"
        )


def dropped_results(env: PalaestraTRLEnv, completion: Sequence[Mapping[str, Any]]) -> list[str]:
    """The results ``env`` returned that are missing from the rollout's messages (TRL dropped them).

    TRL appends each result as a ``tool`` message with ``str(result)`` as its
    content; a dropped result is always the last ones (the rollout ends there).
    """
    results = env.results
    shown = 0
    for message in completion:
        if message.get("role") != "tool" or shown == len(results):
            continue
        if message.get("content") == results[shown]:
            shown += 1
    return list(results[shown:])


def overflow_error(overflows: Sequence[Overflow], rows: int) -> ValueError:
    worst = max(overflows, key=lambda o: o.needed)
    return ValueError(
        f"tool mode: every rollout of the batch ({len(overflows)} of {rows}) ran out of completion "
        f"budget: {worst.describe()}. TRL drops such a result after the environment has already "
        f"stepped, so nothing in this batch can be scored. Raise max_length (--max-length, TRL's "
        f"max_completion_length; at least {worst.needed} here, more for longer episodes), lower "
        "max_turns, or use engine mode."
    )


@cache
def _trainer_class() -> type[Any]:
    """:class:`ToolModeTrainer`, defined on first use (it subclasses TRL's ``GRPOTrainer``)."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    class ToolModeTrainer(GRPOTrainer):
        """``GRPOTrainer`` that checks each batch's rollouts for dropped tool results, and logs RL metrics."""

        overflow_warned = False

        def _generate(self, prompts: list[Any]) -> Any:
            started = time.perf_counter()
            out = super()._generate(prompts)
            _prompt_ids, completion_ids, tool_mask, completions = out[:4]
            envs = list(cast(Sequence[Any], self.environments or []))
            overflows = self.find_overflows(envs, completion_ids, completions)
            for o in overflows:
                envs[o.row].overflow = o.describe()
                if tool_mask is not None:  # no loss on a rollout that is not scored
                    tool_mask[o.row] = [0] * len(tool_mask[o.row])
            if overflows and len(overflows) == len(envs):
                raise overflow_error(overflows, len(envs))
            if overflows and not self.overflow_warned:
                self.overflow_warned = True
                warnings.warn(
                    f"tool mode: {len(overflows)} of {len(envs)} rollouts ran out of completion "
                    f"budget ({overflows[0].describe()}); they are unscorable (no reward, no "
                    "loss). Raise max_length to train on them; rl/overflow_rate counts them. "
                    "Warned once.",
                    stacklevel=2,
                )
            self.log_rollouts(envs, tool_mask, overflows, time.perf_counter() - started)
            return out

        def find_overflows(
            self, envs: Sequence[Any], completion_ids: Sequence[Sequence[int]], completions: Any
        ) -> list[Overflow]:
            found: list[Overflow] = []
            for i, env in enumerate(envs):
                if not isinstance(env, PalaestraTRLEnv):
                    continue
                lost = dropped_results(env, completions[i])
                if not lost:
                    continue
                messages = [{"role": "tool", "name": TOOL_NAME, "content": r} for r in lost]
                extra = self._get_tool_suffix_ids(messages)
                found.append(
                    Overflow(
                        row=i,
                        completion_tokens=len(completion_ids[i]),
                        result_tokens=len(cast(Sequence[int], extra)),
                        budget=int(self.max_completion_length or 0),
                    )
                )
            return found

        def log_rollouts(
            self,
            envs: Sequence[Any],
            tool_mask: Sequence[Sequence[int]] | None,
            overflows: Sequence[Overflow],
            seconds: float,
        ) -> None:
            ours = [e for e in envs if isinstance(e, PalaestraTRLEnv)]
            if not ours:
                return
            seconds = max(seconds, 1e-9)
            errors = sum(e.error is not None for e in ours)
            scored = [e for e in ours if e.error is None and e.overflow is None]
            generated = sum(sum(m) for m in tool_mask) if tool_mask is not None else 0
            values = {
                "rl/success_rate": sum(e.success for e in scored) / len(scored) if scored else 0.0,
                "rl/error_rate": errors / len(ours),
                "rl/overflow_rate": len(overflows) / len(ours),
                "rl/turns_mean": sum(len(e.actions) for e in ours) / len(ours),
                "rl/episodes_per_s": len(ours) / seconds,
                "rl/tokens_per_s": generated / seconds,
            }
            for name, value in values.items():
                self._log_metric(name, float(value))

    return ToolModeTrainer


# ---- the trainer ---------------------------------------------------------------------------


def build_tool_trainer(
    model_id: str | Path,
    config: RLRunConfig,
    grpo_args: Mapping[str, Any],
    *,
    envs: Callable[[], Environment] | None = None,
    task_list: Sequence[Task] | None = None,
) -> tuple[Any, Any, Path]:
    """The tool-mode trainer (not yet trained), the tokenizer to save (own template), the base folder.

    ``grpo_args`` are engine mode's ``GRPOConfig`` arguments (``_rl.grpo_args``); the
    reward weights and the tool-round limit are set here.
    """
    from trl.trainer.grpo_config import GRPOConfig

    if config.orm is not None:  # the config refuses it too; a hand-built config may not
        raise ValueError("--orm is not supported in tool mode (engine mode only)")
    base_path = resolve_model_path(model_id)
    model, tokenizer = load_base(base_path)
    if task_list is None:
        task_list = config_tasks(config)
    build = envs or (lambda: make(config.env))
    probe = build()
    try:
        data = dataset_of_tasks(task_list, intro=tool_intro(probe))
    finally:
        probe.close()
    funcs: list[Any] = [progress] if config.progress_weight else []
    args = dict(grpo_args)
    args.update(
        reward_weights=[config.progress_weight] if config.progress_weight else [],
        max_tool_calling_iterations=config.max_turns,
    )
    trainer = _trainer_class()(
        model=model,
        reward_funcs=funcs,
        args=GRPOConfig(**args),
        train_dataset=data,
        processing_class=tool_tokenizer(tokenizer),
        peft_config=lora_config(config),
        environment_factory=trl_environment_factory(envs or config.env),
    )
    # TRL appends the environment's get_reward as the last reward source, with weight 1.
    trainer.reward_weights[-1] = config.score_weight
    return trainer, tokenizer, base_path
