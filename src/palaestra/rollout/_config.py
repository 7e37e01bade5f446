"""The settings every run shares (``RunSettings``) and ``RolloutConfig``, ``palaestra rollout``'s.

``RunSettings`` holds what ``rollout``, ``eval`` and ``evolve``'s stages have in
common: the agent and its model, per-episode budgets, decoding, concurrency,
retries and the backend (local or Ray). ``RolloutConfig`` adds the task split;
``palaestra.eval.EvalConfig`` adds the suite. Both drive one code path
(:func:`palaestra.rollout._driver.open_run`), and their CLI flags are derived
from these fields (:mod:`palaestra.cli._options`).

Names are one across commands: ``epochs`` is episodes per task (``attempts``
is read as an alias), ``max_turns`` is agent turns per episode (``max_steps``,
its old name, is read as an alias; ``max_steps`` means optimizer steps in the
training configs). Precedence: a flag > the YAML file > the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from palaestra._config import load_config as load_config_file
from palaestra.agent import PromptStyle, SearchConfig, agent_registry, unknown_agent_message
from palaestra.env import Difficulty, Perturbation, Split

#: Fields of ``RunSettings`` that may change when a run is resumed (they do not change
#: what an episode means); each config adds its own.
RESUMABLE_SETTINGS = frozenset(
    {"concurrency", "epochs", "max_retries", "base_url", "backend", "ray_address", "ray_workers"}
)


def turns_field(default: int, description: str) -> Any:
    """The ``max_turns`` field (``max_steps`` accepted as its old name), for configs that redefine it."""
    return Field(
        default=default,
        ge=1,
        validation_alias=AliasChoices("max_turns", "max_steps"),
        description=description,
    )


class AgentSettings(BaseModel):
    """Agent settings shared by every run (rollout, eval, evolve's stages)."""

    agent: str = Field(
        default="react",
        description="Agent id: react, reflexion, codeact, search:best-first, search:mcts, "
        "expert, codeact-expert, random, or a plugin's (the registry lists them all).",
    )
    max_new_tokens: int = Field(
        default=128, ge=1, description="Tokens per model reply (codeact agents: 512)."
    )
    prompt: PromptStyle = Field(
        default="full",
        description="System prompt: full (environment description and actions), compact "
        "(reply format only; for small models fine-tuned on a family) or act (compact, and "
        "replies are the Action line alone, ReAct's Act-only baseline).",
    )
    search: SearchConfig = Field(
        default_factory=SearchConfig, description="Settings of the search:* agents."
    )
    memory: str | None = Field(
        default=None,
        description="react/reflexion: a trajectory memory file (JSONL, `palaestra data memory`); "
        "the memory_k past successes most similar to each task are shown as examples.",
    )
    memory_k: int = Field(default=2, ge=1, description="Examples retrieved from the memory.")

    @field_validator("memory")
    @classmethod
    def _memory_file(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no memory file at {v}; build one with `palaestra data memory`")
        return v

    @field_validator("agent")
    @classmethod
    def _known_agent(cls, v: str) -> str:
        if v in agent_registry():
            return v
        raise ValueError(unknown_agent_message(v))

    @model_validator(mode="after")
    def _memory_agent(self) -> Self:
        if self.memory is not None and self.agent not in ("react", "reflexion"):
            raise ValueError(f"memory works with the react and reflexion agents, not {self.agent}")
        return self

    @model_validator(mode="after")
    def _codeact_reply_length(self) -> Self:
        # Code blocks are long: 128 tokens cut most of them. Only when not set explicitly.
        if self.agent.startswith("codeact") and "max_new_tokens" not in self.model_fields_set:
            self.max_new_tokens = 512
        return self


class RunSettings(AgentSettings):
    """The model, budgets, decoding and backend of a run: what rollout and eval share."""

    model: str | None = Field(
        default=None,
        description="Model id (hf/..., openai/..., gemma-270m, tiny). Not needed "
        "for the expert and random agents.",
    )
    base_url: str | None = Field(default=None, description="Server URL for openai/ models.")
    epochs: int = Field(
        default=1,
        ge=1,
        validation_alias=AliasChoices("epochs", "attempts"),
        description="Episodes per task (the k of pass@k and pass^k).",
    )
    concurrency: int = Field(default=8, ge=1, description="Episodes in flight at once.")
    max_turns: int = turns_field(30, "Agent turns per episode, format errors included.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Token budget per episode (prompt + completion)."
    )
    max_seconds: float | None = Field(default=None, gt=0, description="Wall time per episode.")
    max_retries: int = Field(default=2, ge=0, description="Retries of an episode after an error.")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature (0 = greedy).")
    max_prompt_tokens: int = Field(default=3072, ge=64, description="History budget per prompt.")
    seed: int = Field(
        default=0,
        ge=0,
        description="Sampling seed (epoch e > 0 derives its own at temperature > 0).",
    )
    backend: Literal["local", "ray"] = Field(
        default="local", description="local (asyncio, this process) or ray (actors on a cluster)."
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster address ('auto', 'ray://host:10001'); none = local."
    )
    ray_workers: int = Field(
        default=2, ge=1, description="Ray actors, each running `concurrency` episodes at once."
    )

    @property
    def attempts(self) -> int:
        """The old name of ``epochs`` (kept for one release)."""
        return self.epochs

    @property
    def max_steps(self) -> int:
        """The old name of ``max_turns`` (kept for one release)."""
        return self.max_turns


class RolloutConfig(RunSettings):
    """Everything a rollout run needs; stored in the run header so a run can be reproduced."""

    model_config = ConfigDict(extra="forbid")

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
    perturbations: list[Perturbation] = Field(
        default_factory=list[Perturbation], description="AgentRefine-style perturbations."
    )


#: Fields of ``RolloutConfig`` that may change when a run is resumed.
RESUMABLE_ROLLOUT = RESUMABLE_SETTINGS | {"n", "env_url"}


def load_config(path: str | Path | None = None, **overrides: Any) -> RolloutConfig:
    """Build a config from an optional YAML file and flags (``None`` = not given)."""
    return load_config_file(RolloutConfig, path, "rollout", overrides)
