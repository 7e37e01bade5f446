"""Request and response bodies of the environment server (shared by server and client).

These are the wire format of ``palaestra serve-env``; the OpenAPI schema at
``/openapi.json`` is generated from them. Only pydantic is needed to import
this module, so the client works without the ``[web]`` extra.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from palaestra.env._core import Difficulty, Observation, Split, Task
from palaestra.env._wrappers import Perturbation

#: Machine-readable error codes; the client maps each to an exception type.
ErrorCode = Literal[
    "bad_request",  # the request names an impossible thing (bad task, foreign snapshot): ValueError
    "invalid_json",  # 400: the body is not UTF-8 JSON with finite numbers: ValueError
    "invalid_request",  # 422: the JSON does not fit the route's schema: ValueError
    "forbidden",  # 403: a constructor argument the environment does not let clients set: ValueError
    "payload_too_large",  # 413: the body is over the server's --max-body-bytes: ValueError
    "not_found",  # 404: no such route
    "method_not_allowed",  # 405: the route exists, not with this method
    "unknown_env_id",  # no environment registered under this id: KeyError
    "env_not_found",  # no live environment under this key (closed, reaped, never made): EnvError
    "snapshot_not_found",  # 404: this environment never issued that snapshot id: ValueError
    "reset_needed",  # step before reset / after the end: ResetNeeded
    "env_error",  # the environment raised: EnvError
    "env_broken",  # an earlier call on this env timed out; it is unusable: EnvError
    "snapshot_evicted",  # the snapshot was dropped to bound memory: EnvError
    "timeout",  # the call ran past the server's request timeout: EnvError
    "server_full",  # max_envs live environments: EnvError (retry later)
    "unauthorized",  # missing or wrong bearer token: EnvError
    "internal",  # a server bug: EnvError
]


class ErrorResponse(BaseModel):
    """Body of every error response, on every route and status (400 to 504)."""

    error: ErrorCode = Field(description="Machine-readable code; see ErrorCode in _models.py.")
    detail: str = Field(description="What went wrong, for a person (names the offending field).")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    live_envs: int
    max_envs: int
    auth: bool = Field(description="Whether requests need a bearer token.")


class RegisteredEnv(BaseModel):
    id: str
    description: str
    max_episode_steps: int | None
    source: str
    client_kwargs: list[str] = Field(
        description="Constructor arguments a client may set in POST /envs; all others are the "
        "server operator's (serve-env --env-kwargs)."
    )


class CreateEnv(BaseModel):
    """``POST /envs``: build an environment with ``palaestra.env.make``."""

    model_config = ConfigDict(extra="forbid")

    env_id: str = Field(description="Registered id, e.g. 'shop-v1'.")
    kwargs: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Constructor keyword arguments; only those the environment declares "
        "client-settable (GET /envs: client_kwargs), else 403.",
    )
    max_episode_steps: int | None = Field(
        default=None, ge=0, description="Override the registered step limit (0 disables it)."
    )
    perturbations: list[Perturbation] | None = Field(
        default=None, description="Wrap in Perturb with these perturbations."
    )
    perturbation_seed: int = 0


class EnvCreated(BaseModel):
    env_key: str = Field(
        description="Handle of the live environment, used in every /envs/{key} path."
    )
    env_id: str
    description: str
    action_help: str
    action_verbs: list[str]


class EnvInfo(BaseModel):
    env_key: str
    env_id: str
    description: str
    action_help: str
    action_verbs: list[str]
    task: Task | None = Field(description="The task of the current episode, if any.")
    broken: str | None = Field(description="Why the environment is unusable, if it is.")
    idle_seconds: float
    snapshots: int


class MakeTask(BaseModel):
    """``POST /envs/{key}/tasks``: the arguments of ``Environment.make_task``."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(ge=0)
    split: Split = "train"
    difficulty: Difficulty = "easy"
    params: dict[str, JsonValue] = Field(default_factory=dict)


class Reset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Task
    include_actions: bool = Field(
        default=False, description="Also return available_actions() of the new state."
    )

    @field_validator("task", mode="before")
    @classmethod
    def _checked_task_id(cls, v: Any) -> Any:
        # A task serialised by model_dump carries its computed task_id; Task
        # forbids extra fields, so route it through from_json, which checks it.
        if isinstance(v, dict) and "task_id" in v:
            return Task.from_json(json.dumps(v))
        return v


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    include_actions: bool = Field(
        default=False, description="Also return available_actions() of the new state."
    )


class StepResult(Observation):
    """An :class:`Observation`; ``available_actions`` is present only when asked for."""

    available_actions: list[str] | None = None


class Actions(BaseModel):
    available_actions: list[str]


class Progress(BaseModel):
    progress: float


class ExpertAction(BaseModel):
    action: str


class SnapshotTaken(BaseModel):
    snapshot_id: str = Field(description="Handle of a state kept on the server for this env.")


class Restore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    snapshot_id: str
    include_actions: bool = False


class Restored(BaseModel):
    """The episode state after a restore, so the client's view stays in sync."""

    task: Task | None
    observation: Observation | None
    available_actions: list[str] | None = None


class Closed(BaseModel):
    closed: bool = True
