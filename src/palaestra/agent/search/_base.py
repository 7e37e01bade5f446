"""Shared machinery of the tree-search agents: settings, nodes, expansion, values, committing.

Both searches (``_best_first.py``, ``_mcts.py``) play an episode in *rounds*, as
Koh et al. ("Tree Search for Language Model Agents", 2024) do: from the state
the agent has committed to, search a subtree within the round's budget, then
commit to a path (replayed on the environment and yielded as ``Step`` events),
and search again from its end until the episode terminates or a budget runs
out. Every round grows the same tree, so one episode has one tree; it is
handed to the run store in ``EpisodeEnd.metadata["search_tree"]``.

- **Expansion** samples ``branching`` ReAct replies at a state with the react
  agent's prompt (same system prompt, same history truncation), merges
  replies that propose the same action (whitespace-insensitive; ``samples``
  counts them), and steps each distinct action from the state's snapshot.
  Replies without a parsable action create no node (counted as
  ``format_errors``); an action the environment rejects is a node marked
  ``invalid``. Each sample is its own ``ModelCall`` (``GenerationConfig`` has
  no ``n``), so the engine batches samples across episodes, not within one;
  the sampling seed of the i-th call of an episode is derived from
  (seed, attempt, i), so episodes in step share a config and batch together.
- **Backtracking** is ``env.restore(snapshot)``; the default snapshot replays
  the actions from the task seed, so every environment supports it.
- **Values** (``value=``): ``progress`` — the environment's ``progress()``
  (AgentBoard's progress rate), minus ``invalid_penalty`` for a rejected
  action; ``self`` — the model rates the state 0-10 (``VALUE_PROMPT``; the
  first number in its reply, ``n/10`` or ``n out of 10`` understood; an
  unusable reply counts 0.5 and is counted as ``value_parse_failures``);
  ``rollout`` — the policy plays on from the state for ``rollout_depth``
  steps (LATS's simulation): 1 on success, 0 on failure, else the progress
  reached. A terminal state is valued by its outcome (1 success, 0 otherwise)
  with no model call.

Deviation (also from LATS, which reads the environment's reward the same way):
the environment is used as a simulator, so a terminal outcome reached during
search is known, and a successful terminal state ends the search at once.
This is an upper bound for environments whose end states cannot be undone
(buying, submitting); it is what both papers measure.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from palaestra.agent._core import AgentLoop, EpisodeEnd, ModelCall
from palaestra.agent._prompts import fit_history, then_ask
from palaestra.agent._react import ReactAgent, format_error_feedback, parse_react
from palaestra.env import Environment, Observation, Task
from palaestra.model import ChatMessage, Completion, GenerationConfig
from palaestra.trajectory import TREE_METADATA_KEY, SearchTree, Step, TreeNode

ValueKind = Literal["progress", "self", "rollout"]
Gen = Generator[ModelCall | Step, Completion | None, Any]

VALUE_PROMPT = (
    "Stop acting for a moment. On a scale from 0 to 10, how likely is it that the task will be "
    "completed successfully from the current state? Reply with one number only."
)
_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)


class SearchConfig(BaseModel):
    """Settings of a search agent (``search:best-first`` / ``search:mcts``)."""

    model_config = ConfigDict(extra="forbid")

    branching: int = Field(
        default=4, ge=1, description="Replies sampled per expansion (k); duplicates merged."
    )
    max_nodes: int = Field(default=60, ge=1, description="Expansions per episode, all rounds.")
    round_nodes: int = Field(
        default=10,
        ge=1,
        description="Expansions (best-first) or iterations (MCTS) per round before committing.",
    )
    search_depth: int = Field(
        default=5, ge=1, description="How far below its root one round looks (Koh et al.'s d)."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Prompt + completion tokens per episode; None: unlimited."
    )
    max_seconds: float | None = Field(
        default=None, gt=0, description="Wall time of the search per episode; None: unlimited."
    )
    value: ValueKind = Field(
        default="progress", description="Value function: progress, self or rollout."
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        description="Sampling temperature of expansions; None: the agent's, or 1.0 if greedy.",
    )
    c_uct: float = Field(default=1.0, ge=0, description="MCTS exploration weight in UCT.")
    rollout_depth: int = Field(default=5, ge=1, description="Steps of a value rollout.")
    invalid_penalty: float = Field(
        default=0.1, ge=0, description="Subtracted from the progress value of a rejected action."
    )


def parse_score(text: str) -> float | None:
    """A 0-10 rating in ``text`` as a value in [0, 1]; None when there is none."""
    m = _NUMBER.search(text)
    if m is None:
        return None
    n, scale = float(m.group(1)), float(m.group(2)) if m.group(2) else 10.0
    if scale <= 0 or not 0 <= n <= scale:
        return None
    return n / scale


@dataclass(eq=False)
class Node:
    """A state in the search (runtime form of :class:`TreeNode`)."""

    id: int
    parent: Node | None
    depth: int
    messages: list[ChatMessage]
    snapshot: object
    action: str | None = None
    raw_output: str = ""
    thought: str | None = None
    obs: Observation | None = None
    progress: float = 0.0
    completion: Completion | None = None
    model_seconds: float = 0.0
    value: float | None = None
    visits: int = 0
    value_sum: float = 0.0
    samples: int = 1
    expanded: bool = False
    #: Best-first: the best value in the subtree (stored as ``q`` instead of a mean).
    best_below: float | None = None
    children: list[Node] = field(default_factory=list["Node"])

    @property
    def terminal(self) -> bool:
        return self.obs is not None and self.obs.done

    @property
    def success(self) -> bool:
        return self.obs is not None and self.obs.terminated and bool(self.obs.info.get("success"))

    @property
    def invalid(self) -> bool:
        return self.obs is not None and bool(self.obs.info.get("invalid"))

    @property
    def q(self) -> float | None:
        if self.best_below is not None:
            return self.best_below
        return self.value_sum / self.visits if self.visits else None

    def path(self) -> list[Node]:
        out: list[Node] = []
        cur: Node | None = self
        while cur is not None:
            out.append(cur)
            cur = cur.parent
        return out[::-1]


@dataclass
class Search:
    """Per-episode state (agents are shared by concurrent episodes)."""

    env: Environment
    task: Task
    attempt: int
    act: GenerationConfig
    system: str
    nodes: list[Node] = field(default_factory=list[Node])
    t0: float = field(default_factory=time.perf_counter)
    calls: int = 0
    sampled: int = 0
    tokens: int = 0
    expansions: int = 0
    format_errors: int = 0
    value_parse_failures: int = 0
    rollout_steps: int = 0
    stop_reason: str = ""


class SearchAgent(ReactAgent):
    """Base of the search agents: a ReAct policy whose steps are chosen by searching."""

    algorithm = ""

    def __init__(
        self, *, search: SearchConfig | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.search = (
            search
            if isinstance(search, SearchConfig)
            else SearchConfig.model_validate(search or {})
        )

    # ---- hooks -----------------------------------------------------------------------

    def search_round(
        self, s: Search, root: Node
    ) -> Generator[ModelCall, Completion | None, Node | None]:
        """Search below ``root``; return the descendant to commit to (None: nowhere to go)."""
        raise NotImplementedError

    def finish_tree(self, s: Search) -> None:
        """Fill in statistics before export (best-first backs up its values here)."""

    # ---- budgets and model calls -----------------------------------------------------

    def out_of_budget(self, s: Search, *, nodes: bool = True) -> bool:
        """Whether a budget is spent (``nodes=False``: only tokens and wall time, which
        also cut an expansion or a rollout short). Sets ``s.stop_reason``."""
        cfg = self.search
        if nodes and s.expansions >= cfg.max_nodes:
            s.stop_reason = "nodes"
        elif cfg.max_tokens is not None and s.tokens >= cfg.max_tokens:
            s.stop_reason = "tokens"
        elif cfg.max_seconds is not None and time.perf_counter() - s.t0 >= cfg.max_seconds:
            s.stop_reason = "wall_time"
        else:
            return False
        return True

    def _sample_config(self, s: Search) -> GenerationConfig:
        s.sampled += 1
        if s.act.seed is None or s.act.temperature == 0:
            return s.act
        seed = random.Random(f"palaestra-search:{s.act.seed}:{s.attempt}:{s.sampled}")
        return s.act.model_copy(update={"seed": seed.getrandbits(31)})

    def call(
        self, s: Search, messages: list[ChatMessage], config: GenerationConfig, purpose: str
    ) -> Generator[ModelCall, Completion | None, Completion]:
        prompt = fit_history(messages, self.max_prompt_tokens, self.count_tokens)
        reply = yield ModelCall(prompt, config, purpose=purpose)
        if not isinstance(reply, Completion):
            raise TypeError("the driver must send a Completion in reply to a ModelCall")
        s.calls += 1
        s.tokens += reply.prompt_tokens + reply.completion_tokens
        return reply

    # ---- expansion and values --------------------------------------------------------

    def new_node(self, s: Search, parent: Node | None, messages: list[ChatMessage]) -> Node:
        node = Node(
            id=len(s.nodes),
            parent=parent,
            depth=0 if parent is None else parent.depth + 1,
            messages=messages,
            snapshot=s.env.snapshot(),
            progress=s.env.progress(),
        )
        s.nodes.append(node)
        if parent is not None:
            parent.children.append(node)
        return node

    def expand(self, s: Search, node: Node) -> Generator[ModelCall, Completion | None, list[Node]]:
        """Sample ``branching`` replies at ``node``; return the new children (distinct actions)."""
        node.expanded = True
        s.expansions += 1
        seen: dict[str, Node] = {}
        for _ in range(self.search.branching):
            if self.out_of_budget(s, nodes=False):
                break
            t0 = time.perf_counter()
            reply = yield from self.call(s, node.messages, self._sample_config(s), "act")
            seconds = time.perf_counter() - t0
            parsed = parse_react(reply.text)
            if parsed.action is None:
                s.format_errors += 1
                continue
            key = " ".join(parsed.action.split())
            if key in seen:
                seen[key].samples += 1
                continue
            s.env.restore(node.snapshot)
            obs = s.env.step(parsed.action)
            messages = [
                *node.messages,
                ChatMessage(role="assistant", content=reply.text),
                ChatMessage(role="user", content=obs.text),
            ]
            child = self.new_node(s, node, messages)
            child.action, child.raw_output, child.thought = (
                parsed.action,
                reply.text,
                parsed.thought,
            )
            child.obs, child.completion, child.model_seconds = obs, reply, seconds
            seen[key] = child
        return list(seen.values())

    def evaluate(self, s: Search, node: Node) -> Generator[ModelCall, Completion | None, float]:
        """The value of ``node`` under the configured value function (see the module docstring)."""
        if node.terminal:
            node.value = 1.0 if node.success else 0.0
            return node.value
        kind = self.search.value
        if kind == "progress":
            penalty = self.search.invalid_penalty if node.invalid else 0.0
            value = max(0.0, node.progress - penalty)
        elif kind == "self":
            prompt = then_ask(node.messages, VALUE_PROMPT)  # joined to the last observation
            config = GenerationConfig(max_new_tokens=16, temperature=0.0, stop=["\n"])
            reply = yield from self.call(s, prompt, config, "value")
            score = parse_score(reply.text)
            if score is None:
                s.value_parse_failures += 1
            value = 0.5 if score is None else score
        else:
            value = yield from self.rollout(s, node)
        node.value = value
        return value

    def rollout(self, s: Search, node: Node) -> Generator[ModelCall, Completion | None, float]:
        """LATS's simulation: the policy plays on from ``node`` (the tree does not grow)."""
        s.env.restore(node.snapshot)
        messages = list(node.messages)
        for _ in range(self.search.rollout_depth):
            if self.out_of_budget(s, nodes=False):
                break
            reply = yield from self.call(s, messages, self._sample_config(s), "rollout")
            parsed = parse_react(reply.text)
            messages.append(ChatMessage(role="assistant", content=reply.text))
            if parsed.action is None:
                feedback = format_error_feedback(self.prompt, parsed.error or "")
                messages.append(ChatMessage(role="user", content=feedback))
                continue
            obs = s.env.step(parsed.action)
            s.rollout_steps += 1
            messages.append(ChatMessage(role="user", content=obs.text))
            if obs.terminated:
                return 1.0 if obs.info.get("success") else 0.0
            if obs.truncated:
                break
        return s.env.progress()

    @staticmethod
    def backprop(node: Node, value: float) -> None:
        cur: Node | None = node
        while cur is not None:
            cur.visits += 1
            cur.value_sum += value
            cur = cur.parent

    @staticmethod
    def uct(child: Node, c: float) -> float:
        parent = child.parent
        if child.visits == 0 or parent is None:
            return math.inf
        q = child.value_sum / child.visits
        return q + c * math.sqrt(math.log(max(parent.visits, 1)) / child.visits)

    # ---- the episode -----------------------------------------------------------------

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        first = env.reset(task)
        system = self.system_prompt(env, task)
        extra = self.extra_system(task)
        if extra:
            system += "\n\n" + extra
        act = self.generation
        if act.temperature == 0 or self.search.temperature is not None:
            act = act.model_copy(update={"temperature": self.search.temperature or 1.0})
        s = Search(env, task, attempt, act, system)
        root = self.new_node(
            s,
            None,
            [
                ChatMessage(role="system", content=system),
                ChatMessage(role="user", content=first.text),
            ],
        )
        root.obs, root.value = first, root.progress  # the root's value orders nothing
        max_depth = self.max_steps
        committed = root
        while True:
            if committed.terminal:
                s.stop_reason = s.stop_reason or ("success" if committed.success else "terminal")
                break
            if committed.depth >= max_depth:
                s.stop_reason = "steps"
                break
            if self.out_of_budget(s):
                break
            target = yield from self.search_round(s, committed)
            if target is None:
                s.stop_reason = s.stop_reason or "dead_end"
                break
            yield from self.commit(s, committed, target)
            committed = target
        return self.end(s, committed)

    def commit(
        self, s: Search, start: Node, target: Node
    ) -> Generator[Step, Completion | None, None]:
        """Replay the actions from ``start`` to ``target`` and yield them as the episode's steps."""
        s.env.restore(start.snapshot)
        path = target.path()[start.depth + 1 :]
        for node in path:
            assert node.parent is not None and node.action is not None
            t0 = time.perf_counter()
            obs = s.env.step(node.action)
            reply = node.completion
            yield Step(
                index=node.depth - 1,
                prompt_messages=node.parent.messages[-1:],
                raw_output=node.raw_output,
                thought=node.thought,
                action=node.action,
                observation=obs.text,
                reward=obs.reward,
                progress=s.env.progress(),
                terminated=obs.terminated,
                truncated=obs.truncated,
                invalid_action=bool(obs.info.get("invalid")),
                repeated_action=node.parent.action == node.action,
                info=obs.info,
                prompt_tokens=reply.prompt_tokens if reply else 0,
                completion_tokens=reply.completion_tokens if reply else 0,
                model_seconds=node.model_seconds,
                env_seconds=time.perf_counter() - t0,
            )

    def end(self, s: Search, committed: Node) -> EpisodeEnd:
        self.finish_tree(s)
        tree = self.export(s, committed)
        summary = {"algorithm": self.algorithm, "value": self.search.value, **tree.used}
        meta: dict[str, object] = {
            "search": summary,
            TREE_METADATA_KEY: tree.model_dump(mode="json"),
        }
        messages = committed.messages
        if committed.success:
            return EpisodeEnd("success", messages, metadata=meta)
        if committed.terminal and committed.obs is not None and committed.obs.terminated:
            return EpisodeEnd("failure", messages, metadata=meta)
        if committed.terminal:
            return EpisodeEnd("limit", messages, limit_reason="env_truncated", metadata=meta)
        reason = s.stop_reason if s.stop_reason == "steps" else f"search_{s.stop_reason}"
        return EpisodeEnd("limit", messages, limit_reason=reason, metadata=meta)

    def export(self, s: Search, committed: Node) -> SearchTree:
        nodes = [
            TreeNode(
                id=n.id,
                parent=n.parent.id if n.parent else None,
                depth=n.depth,
                action=n.action,
                raw_output=n.raw_output,
                thought=n.thought,
                observation=n.obs.text if n.obs else "",
                reward=n.obs.reward if n.obs else 0.0,
                progress=n.progress,
                value=n.value,
                visits=n.visits,
                q=n.q,
                samples=n.samples,
                terminal=n.terminal,
                success=n.success,
                invalid=n.invalid,
                expanded=n.expanded,
            )
            for n in s.nodes
        ]
        used = {
            "nodes": len(s.nodes),
            "expansions": s.expansions,
            "model_calls": s.calls,
            "tokens": s.tokens,
            "format_errors": s.format_errors,
            "value_parse_failures": s.value_parse_failures,
            "rollout_steps": s.rollout_steps,
            "seconds": round(time.perf_counter() - s.t0, 4),
            "stop_reason": s.stop_reason,
        }
        return SearchTree(
            algorithm=self.algorithm,
            value=self.search.value,
            system_prompt=s.system,
            nodes=nodes,
            best_path=[n.id for n in committed.path()],
            config=self.search.model_dump(mode="json"),
            used=used,
        )
