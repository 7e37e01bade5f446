"""The viewer's JSON API: response models (the episode itself is served as ``Episode``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from palaestra.trajectory import Episode, Outcome


class RunInfo(BaseModel):
    """One run directory the viewer serves, with its outcome counts."""

    id: str = Field(description="The viewer's key for the run (unique among the served runs).")
    path: str = Field(description="The run directory.")
    run_id: str = Field(description="Run.run_id from the run header ('' if it has none yet).")
    kind: str = Field(description="rollout, eval, evolve, ... ('?' without a header).")
    model: str
    agent: str
    suite: str | None = Field(default=None, description="The eval suite, for eval runs.")
    created_at: datetime | None = None
    episodes: int
    outcomes: dict[str, int] = Field(description="Episodes per outcome.")
    success_rate: float | None = Field(
        default=None, description="Successes over non-error episodes; None if there are none."
    )
    mean_progress: float | None = Field(default=None, description="Over non-error episodes.")


class EpisodeSummary(BaseModel):
    """What the episode list shows of an episode (its full body is ``Episode``)."""

    episode_id: str
    task_id: str
    attempt: int
    env_id: str
    split: str
    difficulty: str
    instruction: str
    outcome: Outcome
    score: float
    progress: float
    n_steps: int
    prompt_tokens: int
    completion_tokens: int
    wall_seconds: float
    finished_at: datetime
    suite: str | None = Field(default=None, description="metadata['suite'] (eval runs).")
    group: str | None = Field(default=None, description="metadata['suite_group'] (eval runs).")
    perturbations: list[str] = Field(default_factory=list[str])
    format_errors: int = Field(description="Steps whose output did not parse.")
    invalid_actions: int = Field(description="Steps the environment rejected.")
    limit_reason: str | None = None
    error: str | None = Field(default=None, description="Error type and message, for errors.")


class Facets(BaseModel):
    """Distinct values (with counts) of each filterable field over the whole run."""

    env: dict[str, int] = Field(default_factory=dict[str, int])
    outcome: dict[str, int] = Field(default_factory=dict[str, int])
    split: dict[str, int] = Field(default_factory=dict[str, int])
    suite: dict[str, int] = Field(default_factory=dict[str, int])
    group: dict[str, int] = Field(default_factory=dict[str, int])


class EpisodePage(BaseModel):
    """One page of a run's episodes after filtering, in the order they finished."""

    run: str
    total: int = Field(description="Episodes matching the filters (all pages).")
    offset: int
    limit: int
    episodes: list[EpisodeSummary]
    facets: Facets


class TaskEpisode(BaseModel):
    """An episode of one task in one of the served runs (for 'compare with' links)."""

    run: str
    episode_id: str
    attempt: int
    outcome: Outcome
    score: float
    n_steps: int


class DiffRow(BaseModel):
    """Step ``index`` of both episodes; a side is None where that episode had ended."""

    index: int
    action_a: str | None
    action_b: str | None
    same: bool = Field(description="Both sides took the same action (whitespace-insensitive).")


class EpisodeDiff(BaseModel):
    """Two episodes of the same task, aligned step by step."""

    run_a: str
    run_b: str
    a: Episode
    b: Episode
    rows: list[DiffRow]
    first_divergence: int | None = Field(
        description="Index of the first step where the actions differ; None if they never do."
    )
