"""``RLRunConfig``: the settings of ``palaestra train rl`` (imports without torch).

One class is the Python API, the CLI flags and the YAML file (precedence:
flag > file > default). It extends the trainers' shared settings
(``TrainRunConfig``: LoRA or full, learning rate, steps, seed, ...) with what
online RL adds: the tasks (environment, split, count), the agent that plays
them (the same agent settings as ``palaestra rollout``), the group size, the
reward's terms and weights, and KL control. ``batch_size`` counts episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from palaestra._config import load_config as load_config_file
from palaestra.agent import PromptStyle
from palaestra.env import Difficulty, Split, Task, tasks
from palaestra.train._config import TrainRunConfig


class RLRunConfig(TrainRunConfig):
    """Online RL (GRPO or RLOO) on episodes the rollout engine plays with the policy being trained."""

    algorithm: Literal["grpo", "rloo"] = Field(
        default="grpo",
        description="grpo (group-normalised advantages, Shao et al. 2024) or rloo (leave-one-out "
        "baseline, no std scaling; Ahmadian et al. 2024).",
    )
    mode: Literal["engine", "tool"] = Field(
        default="engine",
        description="engine: Palaestra's rollout engine plays ReAct/act episodes (rollout_func); "
        "tool: TRL's tool-calling loop over the environment_factory adapter (the agent calls an "
        "`act` tool). See docs/rl.md.",
    )
    # ---- tasks
    env: str = Field(default="house-v1", description="Environment id whose tasks are trained on.")
    split: Split = Field(default="train", description="Task split: train, test or heldout.")
    n: int = Field(default=64, ge=1, description="Number of tasks (the dataset of prompts).")
    start: int = Field(default=0, ge=0, description="First task seed.")
    difficulty: Difficulty | None = Field(
        default=None, description="easy, medium or hard; default cycles through all three."
    )
    params: dict[str, Any] = Field(
        default_factory=dict[str, Any],
        description="Task generator params of the environment (e.g. maze-v1 {goal: go_to, "
        "distractors: 0}; see `palaestra envs show ID`).",
    )
    # ---- the agent that plays the episodes (as in `palaestra rollout`)
    agent: str = Field(
        default="react", description="Agent id (a model-driven chat agent: react, reflexion)."
    )
    prompt: PromptStyle = Field(
        default="full", description="System prompt: full, compact or act (see rollout)."
    )
    max_turns: int = Field(default=8, ge=1, description="Agent turns per episode.")
    max_new_tokens: int = Field(default=128, ge=1, description="Tokens per model reply.")
    max_prompt_tokens: int = Field(default=3072, ge=64, description="History budget per prompt.")
    temperature: float = Field(
        default=1.0, gt=0, description="Sampling temperature of the episodes (RL needs > 0)."
    )
    concurrency: int = Field(default=8, ge=1, description="Episodes in flight at once.")
    max_retries: int = Field(default=1, ge=0, description="Retries of an episode after an error.")
    max_seconds: float | None = Field(default=None, gt=0, description="Wall time per episode.")
    # ---- the algorithm
    num_generations: int = Field(
        default=4, ge=2, description="Group size: episodes per task per step (GRPO's G)."
    )
    batch_size: int = Field(
        default=8,
        ge=1,
        description="Episodes per device per step; a multiple of num_generations.",
    )
    max_length: int = Field(
        default=2048,
        ge=16,
        description="Tokens per episode (first prompt + every later turn); longer episodes are "
        "cut, and with mask_truncated carry no loss.",
    )
    learning_rate: float = Field(default=1e-5, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field(default="constant", description="transformers scheduler name.")
    max_steps: int = Field(default=100, description="Optimizer steps (RL has no epochs).")
    beta: float = Field(
        default=0.04,
        ge=0,
        description="KL penalty against the reference (the base; with LoRA, the adapter off). "
        "0 = no reference model.",
    )
    epsilon: float = Field(default=0.2, gt=0, description="PPO-style clip range of the ratio.")
    mask_truncated: bool = Field(
        default=True, description="Episodes cut at max_length carry no loss (DAPO's overlong mask)."
    )
    # ---- the reward
    score_weight: float = Field(
        default=1.0, description="Weight of the environment's score (the episode's return)."
    )
    progress_weight: float = Field(
        default=0.0,
        description="Weight of progress shaping (the environment's progress in [0, 1] at the end).",
    )
    orm: str | None = Field(
        default=None, description="An outcome reward model folder (`palaestra train orm`)."
    )
    orm_weight: float = Field(default=0.0, description="Weight of the ORM's P(success).")
    # ---- checkpoints (resume: run the same command with the same --out)
    save_steps: int = Field(
        default=25,
        ge=0,
        description="Save a checkpoint to OUT/checkpoints every N optimizer steps; a rerun resumes "
        "from the last one. 0 = no checkpoints (an interrupted run starts over).",
    )
    save_total_limit: int = Field(
        default=2, ge=1, description="Checkpoints kept (older ones are deleted)."
    )
    # ---- generation on vLLM (GPU; TRL's use_vllm, engine mode: see docs/rl.md)
    use_vllm: bool = Field(
        default=False,
        description="Episodes' model calls go to TRL's vLLM engine (weights synced every step) "
        'instead of generate() on the training weights. Needs a GPU and pip install "trl[vllm]".',
    )
    vllm_mode: Literal["server", "colocate"] = Field(
        default="colocate",
        description="server: a separate `trl vllm-serve` process on its own GPU(s); colocate: "
        "vLLM inside each training process, sharing its GPU.",
    )
    vllm_server_base_url: str | None = Field(
        default=None,
        description="URL of the `trl vllm-serve` server (server mode); default http://0.0.0.0:8000.",
    )
    vllm_server_timeout: float = Field(
        default=240.0, gt=0, description="Seconds to wait for the vLLM server to come up."
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Share of each GPU's memory vLLM reserves (colocate mode).",
    )
    vllm_max_model_length: int | None = Field(
        default=None,
        ge=16,
        description="vLLM's context length (colocate mode); default: the model's. Set it to "
        "max_prompt_tokens + max_new_tokens or more.",
    )

    @model_validator(mode="after")
    def _groups_fit(self) -> Self:
        if self.batch_size % self.num_generations:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                f"({self.num_generations}): each step trains on whole groups"
            )
        if self.mode == "tool" and self.orm is not None:
            raise ValueError(
                "--orm is not supported in tool mode (engine mode only; see docs/rl.md)"
            )
        if self.orm_weight and self.orm is None:
            raise ValueError("orm_weight is set but no --orm folder is given")
        return self


def config_tasks(config: RLRunConfig) -> list[Task]:
    """The tasks a config names: ``n`` tasks of ``env`` from seed ``start`` with its params."""
    return tasks(
        config.env, config.split, config.n, config.difficulty, start=config.start, **config.params
    )


def load_rl_config(path: str | Path | None = None, **overrides: Any) -> RLRunConfig:
    """An :class:`RLRunConfig` from an optional YAML file and overrides (``None`` = not given)."""
    return load_config_file(RLRunConfig, path, "train rl", overrides)
