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
from palaestra.model import ChatMessage

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


# ---- search trees (palaestra.agent.search) ----------------------------------------------

#: Version of the stored search-tree format (independent of the episode schema: trees live
#: in their own table, so adding them changed nothing an older reader of episodes sees).
TREE_SCHEMA_VERSION = 1

#: The ``Episode.metadata`` key under which a search agent hands its tree to the store;
#: :meth:`RunStore.add` moves it into the ``trees`` table (see ``_store.py``).
TREE_METADATA_KEY = "search_tree"


class TreeNode(BaseModel):
    """One environment state reached during search (the root is the task's first observation)."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0, description="Index in SearchTree.nodes; the root is 0.")
    parent: int | None = Field(description="The parent's id; None for the root.")
    depth: int = Field(ge=0, description="Actions from the task's start state.")
    action: str | None = Field(default=None, description="The action that led here (None: root).")
    raw_output: str = Field(default="", description="The model reply that proposed the action.")
    thought: str | None = None
    observation: str = Field(default="", description="The environment's reply to the action.")
    reward: float = Field(default=0.0, description="Reward of the step into this state.")
    progress: float = 0.0
    value: float | None = Field(default=None, description="The value function's estimate.")
    visits: int = Field(default=0, ge=0, description="MCTS visits (0 for best-first).")
    q: float | None = Field(
        default=None,
        description="MCTS: mean backed-up value; best-first: the best value in the subtree.",
    )
    samples: int = Field(default=1, ge=0, description="Sampled replies that proposed this action.")
    terminal: bool = Field(default=False, description="The episode ended here (or was truncated).")
    success: bool = False
    invalid: bool = Field(default=False, description="The environment rejected the action.")
    expanded: bool = Field(default=False, description="Actions were sampled from this state.")


class SearchTree(BaseModel):
    """The whole tree of one search episode, as stored beside the episode."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = TREE_SCHEMA_VERSION
    algorithm: str = Field(description="'best-first' or 'mcts'.")
    value: str = Field(description="Value function: 'progress', 'self' or 'rollout'.")
    system_prompt: str = Field(default="", description="The agent's system message.")
    nodes: list[TreeNode] = Field(default_factory=list[TreeNode])
    best_path: list[int] = Field(
        default_factory=list[int],
        description="Node ids of the episode's committed path, root first.",
    )
    config: dict[str, Any] = Field(default_factory=dict[str, Any], description="Search settings.")
    used: dict[str, Any] = Field(
        default_factory=dict[str, Any],
        description="What the search spent: expansions, model calls, tokens, seconds, stop reason.",
    )

    def children(self, node_id: int) -> list[TreeNode]:
        return [n for n in self.nodes if n.parent == node_id]

    def path(self, node_id: int) -> list[TreeNode]:
        """The nodes from the root to ``node_id``, root first."""
        out: list[TreeNode] = []
        cur: int | None = node_id
        while cur is not None:
            out.append(self.nodes[cur])
            cur = self.nodes[cur].parent
        return out[::-1]

    def messages(self, node_id: int) -> list[ChatMessage]:
        """The ReAct conversation that reaches ``node_id``: system, task, then turn pairs."""
        path = self.path(node_id)
        out = [
            ChatMessage(role="system", content=self.system_prompt),
            ChatMessage(role="user", content=path[0].observation),
        ]
        for n in path[1:]:
            out.append(ChatMessage(role="assistant", content=n.raw_output))
            out.append(ChatMessage(role="user", content=n.observation))
        return out
