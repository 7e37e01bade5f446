"""``train_rl``: online multi-turn RL — GRPO or RLOO over TRL's ``GRPOTrainer`` — on Palaestra episodes.

Algorithms (no hand-written policy gradient: TRL computes the loss):

- GRPO, Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical
  Reasoning in Open Language Models": ``num_generations`` episodes per task form
  a group; each episode's advantage is its reward minus the group mean, over the
  group std; a clipped ratio and a KL penalty (``beta``) against the reference.
- RLOO, Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style
  Optimization for Learning from Human Feedback in LLMs": the baseline of an
  episode is the mean of the *other* episodes of its group. That is
  ``G/(G-1)`` times GRPO's mean-centred reward, so it runs as GRPOTrainer with
  ``scale_rewards="none"`` (the constant folds into the learning rate).
- The multi-turn setting follows WebRL (Qi et al. 2024, "WebRL: Training LLM
  Web Agents via Self-Evolving Online Curriculum Reinforcement Learning": an
  outcome reward model, KL-constrained updates) and DigiRL (Bai et al. 2024,
  "DigiRL: Training In-The-Wild Device-Control Agents with Autonomous RL"):
  the whole episode is the action sequence, rewarded at its end.

Engine mode: TRL's ``rollout_func`` hook is :class:`EngineRollout`, which
plays each batch's episodes with Palaestra's own rollout engine (the agent
format, batching and limits of ``palaestra rollout``) on the policy being
trained, stores every episode in ``<out>/episodes`` (a run store: ``palaestra
view`` shows it), and turns each episode into one (prompt, completion,
``env_mask``) sample (:mod:`palaestra.train._rl_episodes`). Rewards are the
environment's score, optionally progress shaping and an ORM, weighted in the
config; an episode that ended in ``error`` (``EnvError``, ``ModelError``, ...)
gets ``None`` from every reward function, which TRL treats as *unscorable*:
left out of its group's baseline and std, advantage 0 — never a reward of 0 —
and its ``env_mask`` is all zeros, so it carries no loss at all.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from palaestra.env import Environment, Task, make, tasks
from palaestra.model import HFModel
from palaestra.rollout import Limits, RolloutEngine, RunSettings, build_agent
from palaestra.train._common import (
    TrainMetadata,
    count_trainable,
    load_base,
    lora_config,
    resolve_model_path,
    save_output,
    sft_chat_template,
    trainer_args,
)
from palaestra.train._rl_config import RLRunConfig
from palaestra.train._rl_episodes import (
    RecordingAgent,
    TurnRecorder,
    episode_tokens,
    task_groups,
)
from palaestra.trajectory import Episode, Run, RunStore

#: Where the episodes of a run live, inside its output folder.
EPISODES_DIR = "episodes"


# ---- rewards: each reads its column of the rollout's output; None = unscorable ------------


def score(
    completions: Sequence[Any], env_score: Sequence[float | None], **_: Any
) -> list[float | None]:
    """The environment's score of each episode (``None`` for an episode that ended in error)."""
    return list(env_score)


def progress(
    completions: Sequence[Any], env_progress: Sequence[float | None], **_: Any
) -> list[float | None]:
    """The environment's progress at the end of each episode, in [0, 1] (shaping)."""
    return list(env_progress)


def orm(
    completions: Sequence[Any], orm_score: Sequence[float | None], **_: Any
) -> list[float | None]:
    """The outcome reward model's P(success) of each episode."""
    return list(orm_score)


def episode_rewards(
    episodes: Sequence[Episode], orm_scores: Sequence[float] | None = None
) -> dict[str, list[float | None]]:
    """The reward columns of ``episodes``: ``None`` in every column for an ``error`` episode."""
    ok = [ep.outcome != "error" for ep in episodes]
    cols: dict[str, list[float | None]] = {
        "env_score": [ep.score if good else None for ep, good in zip(episodes, ok, strict=True)],
        "env_progress": [
            ep.progress if good else None for ep, good in zip(episodes, ok, strict=True)
        ],
    }
    if orm_scores is not None:
        cols["orm_score"] = [s if good else None for s, good in zip(orm_scores, ok, strict=True)]
    return cols


def reward_functions(config: RLRunConfig) -> tuple[list[Any], list[float]]:
    """The reward functions the config turns on, and their weights."""
    funcs: list[Any] = [score]
    weights = [config.score_weight]
    if config.progress_weight:
        funcs.append(progress)
        weights.append(config.progress_weight)
    if config.orm is not None:
        funcs.append(orm)
        weights.append(config.orm_weight)
    return funcs, weights


# ---- the rollout function ----------------------------------------------------------------


def loss_template(tokenizer: Any) -> str:
    """The model's chat template with ``{% generation %}`` markers: which tokens carry loss."""
    chosen = sft_chat_template(tokenizer, {"messages": []}, assistant_only_loss=True)
    if chosen is not None:
        return chosen
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    original = tokenizer.chat_template
    found = original if has_generation_markers(original) else get_training_chat_template(tokenizer)
    if not isinstance(found, str):  # sft_chat_template raises first; kept for the type checker
        raise ValueError("the model's chat template cannot mark which tokens carry loss")
    return found


class EngineRollout:
    """TRL's ``rollout_func``: plays a batch's groups with the rollout engine. See the module docstring."""

    def __init__(
        self,
        config: RLRunConfig,
        task_list: Sequence[Task],
        tokenizer: Any,
        *,
        store: RunStore | None = None,
        envs: Callable[[], Environment] | None = None,
        model_id: str = "policy",
    ) -> None:
        self.config = config
        self.tasks = {t.task_id: t for t in task_list}
        self.tokenizer = tokenizer
        self.loss_template = loss_template(tokenizer)
        self.store = store
        self.envs = envs or (lambda: make(config.env))
        self.model_id = model_id
        self.rounds = 0
        #: Episodes stored per task so far: a stored episode's attempt number is unique in the store.
        self.stored: Counter[str] = Counter()
        self.orm_model: Any = None
        if config.orm is not None:
            from palaestra.train._orm_infer import load_orm

            self.orm_model = load_orm(config.orm)

    def settings(self) -> RunSettings:
        c = self.config
        return RunSettings(
            agent=c.agent,
            prompt=c.prompt,
            max_new_tokens=c.max_new_tokens,
            max_turns=c.max_turns,
            max_prompt_tokens=c.max_prompt_tokens,
            temperature=c.temperature,
            # A fresh seed per round: round r's attempt a must not replay round 0's noise.
            seed=c.seed + 1_000_003 * self.rounds,
        )

    def play(self, keys: Sequence[str], policy: Any) -> list[Episode]:
        """One episode per row of the groups ``keys`` (``num_generations`` rows each), in order."""
        g = self.config.num_generations
        counts = Counter(keys)
        unique = [self.tasks[k] for k in dict.fromkeys(keys)]
        self.recorder = TurnRecorder()
        agent = RecordingAgent(build_agent(self.settings(), policy), self.recorder)
        engine = RolloutEngine(
            agent,
            self.envs,
            policy,
            run_id=f"rl-round-{self.rounds}",
            concurrency=self.config.concurrency,
            limits=Limits(max_seconds=self.config.max_seconds),
            max_retries=self.config.max_retries,
        )
        # A task drawn m times in one batch plays m*G attempts; occurrence j takes attempts j*G..
        played = engine.run(unique, g * max(counts.values()))
        self.engine_stats = engine.stats
        by_key = {(ep.task.task_id, ep.attempt): ep for ep in played}
        seen: Counter[str] = Counter()
        rows: list[Episode] = []
        for key in keys:
            j = seen[key]
            seen[key] += 1
            rows.extend(by_key[(key, j * g + a)] for a in range(g))
        return rows

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, Any]:
        started = time.perf_counter()
        keys = task_groups(prompts, self.config.num_generations)
        policy = HFModel(
            trainer.accelerator.unwrap_model(trainer.model),
            self.tokenizer,
            id=self.model_id,
            batch_size=self.config.concurrency,
        )
        episodes = self.play(keys, policy)
        samples = [
            episode_tokens(
                self.tokenizer,
                self.recorder.pop(ep.task.task_id, ep.attempt),
                loss_template=self.loss_template,
                max_length=self.config.max_length,
            )
            for ep in episodes
        ]
        for ep, s in zip(episodes, samples, strict=True):
            if ep.outcome == "error":  # unscorable: no reward, and no loss either
                s.env_mask = [0] * len(s.completion_ids)
        orm_scores = self.orm_model.score(episodes) if self.orm_model is not None else None
        out: dict[str, Any] = {
            "prompt_ids": [s.prompt_ids for s in samples],
            "completion_ids": [s.completion_ids for s in samples],
            # The trainer scores the rendered sequence itself (old log-probs = its own, as with
            # num_iterations=1); sampled log-probs of re-rendered tokens would not line up.
            "logprobs": None,
            "env_mask": [s.env_mask for s in samples],
            **episode_rewards(episodes, orm_scores),
        }
        step = int(getattr(getattr(trainer, "state", None), "global_step", 0))
        self._store(episodes, samples, step)
        self._log(trainer, episodes, samples, time.perf_counter() - started)
        self.rounds += 1
        return out

    def _store(self, episodes: Sequence[Episode], samples: Sequence[Any], step: int) -> None:
        if self.store is None:
            return
        g = self.config.num_generations
        for i, (ep, s) in enumerate(zip(episodes, samples, strict=True)):
            n = self.stored[ep.task.task_id]
            self.stored[ep.task.task_id] += 1
            meta = {
                **ep.metadata,
                "rl_step": step,
                "rl_round": self.rounds,
                "rl_group": i // g,
                "rl_trained_turns": s.kept_turns,
                "rl_truncated": s.truncated,
            }
            self.store.add(ep.model_copy(update={"attempt": n, "metadata": meta}))

    def _log(
        self, trainer: Any, episodes: Sequence[Episode], samples: Sequence[Any], seconds: float
    ) -> None:
        # GRPOTrainer averages these per logging step beside its own reward, reward_std and kl
        # (the hook its reward functions get as ``log_metric``).
        log = getattr(trainer, "_log_metric", None)
        if not callable(log):
            return
        scored = [ep for ep in episodes if ep.outcome != "error"]
        tokens = sum(ep.completion_tokens for ep in episodes)
        seconds = max(seconds, 1e-9)
        values = {
            "rl/success_rate": (
                sum(ep.outcome == "success" for ep in scored) / len(scored) if scored else 0.0
            ),
            "rl/error_rate": 1 - len(scored) / len(episodes),
            "rl/truncated_rate": sum(s.truncated for s in samples) / len(samples),
            "rl/turns_mean": sum(len(ep.steps) for ep in episodes) / len(episodes),
            "rl/episodes_per_s": len(episodes) / seconds,
            "rl/tokens_per_s": tokens / seconds,
        }
        for name, value in values.items():
            log(name, float(value))


# ---- the trainer -------------------------------------------------------------------------


def _run_header(out: Path, model_id: str, config: RLRunConfig) -> Run:
    packages: dict[str, str] = {}
    for name in ("palaestra", "torch", "transformers", "trl", "peft"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return Run(
        run_id=out.name,
        kind="rl",
        model_id=model_id,
        agent=config.agent,
        config=config.model_dump(mode="json"),
        palaestra_version=packages.get("palaestra", ""),
        packages=packages,
        host=platform.node(),
    )


def grpo_args(config: RLRunConfig, out_dir: Path) -> dict[str, Any]:
    """Keyword arguments of TRL's ``GRPOConfig`` for ``config``."""
    args = trainer_args(config, out_dir)
    args.pop("max_length")  # GRPO counts prompt and completion separately
    args.update(
        num_generations=config.num_generations,
        max_completion_length=config.max_length,
        beta=config.beta,
        epsilon=config.epsilon,
        mask_truncated_completions=config.mask_truncated,
        scale_rewards="group" if config.algorithm == "grpo" else "none",
        temperature=config.temperature,
        # GRPOConfig turns it on by default; the shared setting decides, as for SFT and DPO.
        gradient_checkpointing=config.gradient_checkpointing,
        reward_weights=reward_functions(config)[1],
    )
    return args


def build_rl_trainer(
    model_id: str | Path,
    config: RLRunConfig,
    out_dir: str | Path,
    *,
    store: RunStore | None = None,
    envs: Callable[[], Environment] | None = None,
    task_list: Sequence[Task] | None = None,
) -> tuple[Any, Any, Path, EngineRollout]:
    """The configured ``GRPOTrainer`` (not yet trained), its tokenizer, the base folder, its rollout."""
    from datasets import Dataset
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    base_path = resolve_model_path(model_id)
    model, tokenizer = load_base(base_path)
    if task_list is None:
        task_list = tasks(config.env, config.split, config.n, config.difficulty, start=config.start)
    rollout = EngineRollout(
        config, task_list, tokenizer, store=store, envs=envs, model_id=str(model_id)
    )
    # The prompt column carries the task id; the rollout function renders the real prompt.
    data = Dataset.from_dict({"prompt": [t.task_id for t in task_list]})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(config)[0],
        args=GRPOConfig(**grpo_args(config, Path(out_dir))),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        rollout_func=rollout,
    )
    return trainer, tokenizer, base_path, rollout


def train_rl(
    model_id: str | Path,
    config: RLRunConfig | None = None,
    out_dir: str | Path = "rl-out",
    *,
    envs: Callable[[], Environment] | None = None,
    task_list: Sequence[Task] | None = None,
) -> TrainMetadata:
    """Train ``model_id`` (tiny, gemma-270m, hf/<dir>) with online RL on ``config.env``'s tasks.

    Writes the adapter (or full model), tokenizer and ``palaestra.json`` to
    ``out_dir``, and every episode played to ``out_dir/episodes``. ``envs`` and
    ``task_list`` override how an environment is made and which tasks are
    trained on (tests, plugins; default ``make(config.env)`` and its tasks).
    """
    config = config or RLRunConfig()
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(out / EPISODES_DIR)
    try:
        store.write_run(_run_header(out / EPISODES_DIR, str(model_id), config))
        trainer, tokenizer, base_path, _ = build_rl_trainer(
            model_id, config, out, store=store, envs=envs, task_list=task_list
        )
        result = trainer.train()
        return save_output(
            trainer,
            tokenizer,
            out,
            kind="rl",
            model_id=model_id,
            base_path=base_path,
            config=config,
            card={"env": config.env, "split": config.split, "n": config.n, "start": config.start},
            rows=len(trainer.train_dataset),
            metrics=result.metrics,
            trainable=count_trainable(trainer.model),
            started=started,
        )
    finally:
        store.close()
