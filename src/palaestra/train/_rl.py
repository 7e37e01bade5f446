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

import functools
import json
import math
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from palaestra._config import config_changes, refuse_changes
from palaestra.env import Environment, Task, make
from palaestra.model import HFModel, Model
from palaestra.rollout import Limits, RolloutEngine, RunSettings, build_agent, package_versions
from palaestra.train._common import (
    METADATA_FILE,
    TrainMetadata,
    count_trainable,
    load_base,
    lora_config,
    read_metadata,
    resolve_model_path,
    save_output,
    sft_chat_template,
    trainer_args,
)
from palaestra.train._rl_config import RLRunConfig, config_tasks
from palaestra.train._rl_episodes import (
    RecordingAgent,
    TurnRecorder,
    episode_tokens,
    task_groups,
)
from palaestra.trajectory import DB_NAME, Episode, Run, RunStore

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
        #: Episodes this process stored per task so far (see :meth:`_store` for attempt numbers).
        self.stored: Counter[str] = Counter()
        #: Per task, the attempt numbers below this were used before a resume (:meth:`restore`).
        self.first_attempt: dict[str, int] = {}
        #: This process and the number of processes (accelerate/DeepSpeed): each plays its own slice.
        self.rank, self.world = 0, 1
        self._vllm: Any = None
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
            # A fresh seed per round and process: round r's attempt a must not replay round 0's
            # noise, nor process 1 repeat process 0's episodes of a task drawn by both.
            seed=c.seed + 1_000_003 * (self.rounds * self.world + self.rank),
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
        self.rank = int(getattr(trainer.accelerator, "process_index", 0))
        self.world = int(getattr(trainer.accelerator, "num_processes", 1))
        episodes = self.play(keys, self.policy(trainer))
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

    def policy(self, trainer: Any) -> Model:
        """The model the episodes call: the live training weights, or TRL's vLLM (``use_vllm``)."""
        if not self.config.use_vllm:
            return HFModel(
                trainer.accelerator.unwrap_model(trainer.model),
                self.tokenizer,
                id=self.model_id,
                batch_size=self.config.concurrency,
            )
        from palaestra.train._rl_vllm import VLLMPolicy, vllm_backend

        if self._vllm is None:
            self._vllm = vllm_backend(trainer)
        # TRL pushed this step's weights to vLLM just before calling us, from the main process
        # (server mode): no process may generate before that push is complete.
        trainer.accelerator.wait_for_everyone()
        eos = getattr(getattr(trainer.model, "generation_config", None), "eos_token_id", None)
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        return VLLMPolicy(self._vllm, self.tokenizer, id=self.model_id, eos_ids=eos_ids)

    def restore(self, step: int, rounds: int) -> int:
        """Continue a run resumed at optimizer step ``step`` after ``rounds`` rollouts.

        Episodes stored at or after ``step`` were played by a policy the restart
        discards (or were never trained on): they are kept, marked
        ``rl_discarded: True`` (and ``rl_resumed_at``: ``step``), never replaced.
        New episodes take attempt numbers above every stored one, and the round
        counter (so each round's sampling seed) continues. Returns how many
        episodes were marked.
        """
        self.rounds = rounds
        if self.store is None:
            return 0
        stale: list[str] = []
        for ep in self.store.episodes():
            tid = ep.task.task_id
            self.first_attempt[tid] = max(self.first_attempt.get(tid, 0), ep.attempt + 1)
            rl_step = ep.metadata.get("rl_step")
            if not ep.metadata.get("rl_discarded") and (rl_step is None or rl_step >= step):
                stale.append(ep.episode_id)
        return self.store.annotate(stale, {"rl_discarded": True, "rl_resumed_at": step})

    def _store(self, episodes: Sequence[Episode], samples: Sequence[Any], step: int) -> None:
        if self.store is None:
            return
        g = self.config.num_generations
        for i, (ep, s) in enumerate(zip(episodes, samples, strict=True)):
            tid = ep.task.task_id
            # Unique in the store: above any attempt of a run this one resumed, and
            # interleaved by process (each process stores its own slice of the batch).
            n = self.first_attempt.get(tid, 0) + self.stored[tid] * self.world + self.rank
            self.stored[tid] += 1
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
    packages = package_versions()
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


# ---- resume ------------------------------------------------------------------------------

#: Where a run's checkpoints live, inside its output folder (``trainer_args``'s output_dir).
CHECKPOINTS_DIR = "checkpoints"
#: Settings that may change when a run is resumed: where and how it runs, not what it trains.
RESUMABLE = frozenset(
    {
        "progress",
        "logging_steps",
        "concurrency",
        "max_retries",
        "save_steps",
        "save_total_limit",
        "use_vllm",
        "vllm_mode",
        "vllm_server_base_url",
        "vllm_server_timeout",
        "vllm_gpu_memory_utilization",
        "vllm_max_model_length",
    }
)


def _say(message: str) -> None:
    # Once, from the main process (accelerate sets RANK in every process it launches).
    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr, flush=True)


def check_resume(out: Path, model_id: str, config: RLRunConfig) -> None:
    """Refuse to continue the run in ``out`` with another model or a config that changes what it trains."""
    path = out / EPISODES_DIR
    if not (path / DB_NAME).is_file():
        return
    with RunStore(path, readonly=True) as store:
        header = store.run()
    if header is None:
        return
    if header.kind != "rl":
        raise ValueError(
            f"{path} holds a {header.kind} run, not an RL run: use a new --out directory"
        )
    old = RLRunConfig.model_validate(header.config)
    changes = config_changes(old, config, RESUMABLE)
    if header.model_id != model_id:
        changes.insert(0, f"model: {header.model_id!r} -> {model_id!r}")
    refuse_changes(out, "an RL run", changes)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``folder`` (the trainer writes ``trainer_state.json`` last)."""
    found: list[tuple[int, Path]] = []
    if folder.is_dir():
        for d in folder.iterdir():
            m = re.fullmatch(r"checkpoint-(\d+)", d.name)
            if m and (d / "trainer_state.json").is_file():
                found.append((int(m[1]), d))
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer steps a checkpoint had taken."""
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])


def rounds_before(args: Any, step: int) -> int:
    """Rollouts played before optimizer step ``step``.

    GRPOTrainer plays one every ``steps_per_generation * num_iterations`` micro-steps
    (``_prepare_inputs``), and an optimizer step is ``gradient_accumulation_steps`` of them.
    """
    per = args.steps_per_generation * args.num_iterations
    return math.ceil(step * args.gradient_accumulation_steps / per)


@functools.cache
def _epoch_sampler() -> type[Any]:
    from trl.trainer.utils import RepeatSampler

    class EpochRepeatSampler(RepeatSampler):
        """TRL's ``RepeatSampler`` whose shuffle is drawn from ``(seed, epoch)``."""

        def set_epoch(self, epoch: int) -> None:
            if self.shuffle:
                self.generator.manual_seed((self.seed or 0) + epoch)

    return EpochRepeatSampler


def order_by_epoch(trainer: Any) -> None:
    """Make each epoch's task order a function of ``(seed, epoch)``, so a resumed run draws the same tasks.

    TRL's ``RepeatSampler`` shuffles with one generator seeded once: epoch e's order
    is its e-th draw. A trainer resumed in epoch e builds a fresh sampler, whose
    first draw is epoch 0's order, and would skip and replay steps of the wrong
    order. The trainer calls ``set_epoch`` on its sampler at the start of every
    epoch (``Trainer._inner_training_loop``, through accelerate's
    ``DataLoaderShard.set_epoch``); this sampler has one.
    """
    make = trainer._get_train_sampler
    cls = _epoch_sampler()

    def sampler(dataset: Any = None) -> Any:
        s = make(dataset)
        if type(s).__name__ != "RepeatSampler":  # an order TRL did not choose: leave it
            return s
        return cls(
            s.data_source,
            s.mini_repeat_count,
            batch_size=s.batch_size,
            repeat_count=s.repeat_count,
            shuffle=s.shuffle,
            seed=s.seed,
        )

    trainer._get_train_sampler = sampler


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
        reward_weights=reward_functions(config)[1],
    )
    if config.save_steps:
        args.update(
            save_strategy="steps",
            save_steps=config.save_steps,
            save_total_limit=config.save_total_limit,
        )
    if config.use_vllm:
        args.update(
            use_vllm=True,
            vllm_mode=config.vllm_mode,
            vllm_server_base_url=config.vllm_server_base_url,
            vllm_server_timeout=config.vllm_server_timeout,
            vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
            vllm_max_model_length=config.vllm_max_model_length,
            # The rollout returns no sampling log-probs (the trainer scores the re-rendered
            # sequence itself), so there is nothing to correct vLLM's sampling against.
            vllm_importance_sampling_correction=False,
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
) -> tuple[Any, Any, Path, EngineRollout | None]:
    """The configured ``GRPOTrainer`` (not yet trained), its tokenizer, the base folder, its rollout.

    In tool mode (``config.mode == "tool"``, :mod:`palaestra.train._rl_tool`) there is
    no rollout (``None``) and no episode is stored.
    """
    from datasets import Dataset
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    if config.mode == "tool":
        from palaestra.train._rl_tool import build_tool_trainer

        args = grpo_args(config, Path(out_dir))
        built = build_tool_trainer(model_id, config, args, envs=envs, task_list=task_list)
        return (*built, None)
    base_path = resolve_model_path(model_id)
    model, tokenizer = load_base(base_path)
    if task_list is None:
        task_list = config_tasks(config)
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
    ``out_dir``, every episode played to ``out_dir/episodes``, and a checkpoint
    every ``save_steps`` to ``out_dir/checkpoints``. ``envs`` and ``task_list``
    override how an environment is made and which tasks are trained on (tests,
    plugins; default ``make(config.env)`` and its tasks).

    Run again on the same ``out_dir``, it resumes from the last complete
    checkpoint (refusing a config that differs in a field outside
    :data:`RESUMABLE`; see :meth:`EngineRollout.restore` for the episodes played
    after the checkpoint), or, when the run had finished, returns its
    metadata without training.
    """
    config = config or RLRunConfig()
    started = time.perf_counter()
    out = Path(out_dir)
    check_resume(out, str(model_id), config)
    if (out / METADATA_FILE).is_file():
        meta = read_metadata(out)
        if meta.kind != "rl":
            raise ValueError(
                f"{out} holds a finished {meta.kind} output: use a new --out directory"
            )
        _say(
            f"{out} already holds a finished RL run: nothing to train (use a new --out to train again)"
        )
        return meta
    checkpoint = last_checkpoint(out / CHECKPOINTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(out / EPISODES_DIR)
    try:
        earlier = len(store)
        store.write_run(_run_header(out / EPISODES_DIR, str(model_id), config))
        trainer, tokenizer, base_path, rollout = build_rl_trainer(
            model_id, config, out, store=store, envs=envs, task_list=task_list
        )
        order_by_epoch(trainer)
        step = checkpoint_step(checkpoint) if checkpoint is not None else 0
        marked = 0
        if isinstance(rollout, EngineRollout) and (checkpoint is not None or earlier):
            marked = rollout.restore(step, rounds_before(trainer.args, step))
        kept = f"{marked} episode(s) played after it stay in {out / EPISODES_DIR}"
        if checkpoint is not None:
            _say(
                f"resuming {out} from step {step} ({checkpoint.name}); {kept}, marked rl_discarded"
            )
        elif marked:
            _say(
                f"{out} has episodes but no checkpoint: starting at step 0; {kept}, marked rl_discarded"
            )
        result = trainer.train(
            resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None
        )
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
