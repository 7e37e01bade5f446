"""``RolloutConfig``: the one typed config behind ``palaestra rollout``, its flags and YAML files.

Precedence: a flag given on the command line > the YAML file > the default.
Unknown keys in a file are errors that name the key and list the valid ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from palaestra._config import load_config as load_config_file
from palaestra.agent._react import PromptStyle
from palaestra.env import Difficulty, Perturbation, Split


class AgentSettings(BaseModel):
    """Agent settings shared by rollout and eval configs."""

    agent: str = Field(
        default="react",
        description="react, reflexion, codeact, search:best-first, search:mcts, expert, "
        "codeact-expert or random.",
    )
    max_new_tokens: int = Field(default=128, ge=1, description="Tokens per model reply.")
    prompt: PromptStyle = Field(
        default="full",
        description="System prompt: full (environment description and actions), compact "
        "(reply format only; for small models fine-tuned on a family) or act (compact, and "
        "replies are the Action line alone, ReAct's Act-only baseline).",
    )
    search: dict[str, Any] = Field(
        default_factory=dict[str, Any],
        description="search:* agents: SearchConfig settings (branching, max_nodes, round_nodes, "
        "search_depth, max_tokens, max_seconds, value=progress|self|rollout, temperature, "
        "c_uct, rollout_depth).",
    )

    @model_validator(mode="after")
    def _codeact_reply_length(self) -> Self:
        # Code blocks are long: 128 tokens cut most of them. Only when not set explicitly.
        if self.agent.startswith("codeact") and "max_new_tokens" not in self.model_fields_set:
            self.max_new_tokens = 512
        return self


class RolloutConfig(AgentSettings):
    """Everything a rollout run needs; stored in the run header so a run can be reproduced."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description="Model id (hf/..., openai/..., gemma-270m, tiny). Not needed "
        "for the expert and random agents.",
    )
    base_url: str | None = Field(default=None, description="Server URL for openai/ models.")
    env: str = Field(description="Environment id, e.g. house-v1.")
    env_url: str | None = Field(
        default=None, description="Run the environment on this env server instead of in-process."
    )
    split: Split = Field(default="train", description="Task split: train, test or heldout.")
    n: int = Field(default=10, ge=1, description="Number of tasks.")
    start: int = Field(default=0, ge=0, description="First task seed.")
    difficulty: Difficulty | None = Field(
        default=None, description="easy, medium or hard; default cycles through all three."
    )
    attempts: int = Field(default=1, ge=1, description="Attempts per task (epochs; pass@k).")
    concurrency: int = Field(default=8, ge=1, description="Episodes in flight at once.")
    max_steps: int = Field(default=30, ge=1, description="Agent turns per episode.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Token budget per episode (prompt + completion)."
    )
    max_seconds: float | None = Field(default=None, gt=0, description="Wall time per episode.")
    max_retries: int = Field(default=2, ge=0, description="Retries of an episode after an error.")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature (0 = greedy).")
    max_prompt_tokens: int = Field(default=3072, ge=64, description="History budget per prompt.")
    perturbations: list[Perturbation] = Field(
        default_factory=list[Perturbation], description="AgentRefine-style perturbations."
    )
    seed: int = Field(default=0, description="Sampling seed.")

    backend: Literal["local", "ray"] = Field(
        default="local", description="local (asyncio, this process) or ray (actors on a cluster)."
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster address ('auto', 'ray://host:10001'); none = local."
    )
    ray_workers: int = Field(
        default=2, ge=1, description="Ray actors, each running `concurrency` episodes at once."
    )


def load_config(path: str | Path | None = None, **overrides: Any) -> RolloutConfig:
    """Build a config from an optional YAML file and flags (``None`` = not given)."""
    return load_config_file(RolloutConfig, path, "rollout", overrides)
