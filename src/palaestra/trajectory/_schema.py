"""The one trajectory schema: ``Run``, ``Episode``, ``Step`` (versioned pydantic models).

Storage, the viewer, reports and training data builders all read these
models; nothing writes trajectories as hand-made dicts. ``SCHEMA_VERSION``
is bumped on any incompatible change, and readers refuse versions they do
not know with a message that says which version wrote the file.

Outcomes
--------
- ``success``: the environment terminated with ``info["success"]``.
- ``failure``: the environment terminated without success.
- ``limit``: a budget ran out (steps, tokens or wall time), or the
  environment truncated the episode. Not an error, and not a failure of the
  task: it is reported separately.
- ``error``: infrastructure (environment server, model backend, sandbox)
  failed; ``error`` holds the type, message and traceback. Errors are never
  scored as reward 0: metrics exclude them and count them separately.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from palaestra.env import Task
from palaestra.model._core import ChatMessage

SCHEMA_VERSION = 1

Outcome = Literal["success", "failure", "limit", "error"]
OUTCOMES: tuple[Outcome, ...] = ("success", "failure", "limit", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ErrorInfo(BaseModel):
    """An infrastructure failure, kept with the episode it ended."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    traceback: str = ""
    #: Where it happened: "env", "model", "sandbox", "agent".
    source: str = "env"


class Step(BaseModel):
    """One agent turn: what the model saw and said, what it did, what came back."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="0-based position in the episode.")
    #: Messages added to the conversation for this turn (the prompt is the
    #: episode's messages up to here; storing only the new ones keeps a run linear in size).
    prompt_messages: list[ChatMessage] = Field(default_factory=list[ChatMessage])
    raw_output: str = Field(default="", description="The model's text, verbatim.")
    thought: str | None = None
    action: str | None = Field(
        default=None, description="The parsed action, None on a format error."
    )
    format_error: str | None = Field(default=None, description="Why the output did not parse.")
    observation: str = Field(default="", description="The environment's reply (or the feedback).")
    reward: float = 0.0
    progress: float = 0.0
    terminated: bool = False
    truncated: bool = False
    invalid_action: bool = False
    repeated_action: bool = Field(default=False, description="Same action as the previous step.")
    info: dict[str, Any] = Field(default_factory=dict[str, Any])
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    env_seconds: float = 0.0


class Episode(BaseModel):
    """One attempt of an agent at a task."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task: Task
    attempt: int = Field(default=0, ge=0, description="Attempt index (epochs, retries of pass@k).")
    agent: str
    model_id: str
    outcome: Outcome
    score: float = Field(default=0.0, description="Summed reward (the task score).")
    progress: float = 0.0
    steps: list[Step] = Field(default_factory=list[Step])
    #: The full conversation: system prompt, observations, model outputs, in order.
    messages: list[ChatMessage] = Field(default_factory=list[ChatMessage])
    limit_reason: str | None = None
    error: ErrorInfo | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)
    wall_seconds: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict[str, Any])

    @property
    def episode_id(self) -> str:
        """Unique within a run: the task id and the attempt."""
        return f"{self.task.task_id}#{self.attempt}"

    @property
    def success(self) -> bool:
        return self.outcome == "success"

    @property
    def n_steps(self) -> int:
        return len(self.steps)


class Run(BaseModel):
    """A run's header: what was run, by what, where."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    kind: str = Field(default="rollout", description="rollout, eval, evolve, ...")
    created_at: datetime = Field(default_factory=utcnow)
    model_id: str = ""
    agent: str = ""
    config: dict[str, Any] = Field(default_factory=dict[str, Any])
    git_hash: str | None = None
    palaestra_version: str = ""
    packages: dict[str, str] = Field(default_factory=dict[str, str])
    host: str = ""
