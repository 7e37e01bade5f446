"""``reflect``: revision trajectories spliced from search trees (Agent-R).

Follows Agent-R (Yuan et al., "Agent-R: Training Language Model Agents to
Reflect via Iterative Self-Training", 2025). In a stored search tree
(``palaestra.agent.search``), at a state with two children whose subtrees
differ — one reaches a successful terminal state, the other none — take a
**bad path** through the second child (to a failed terminal state if it has
one, else to its lowest-valued leaf) and a **good path** through the first (to
its shallowest success). The actor model reads the bad path as numbered steps
and names the first wrong step ``t'`` (``ERROR_PROMPT``; the first integer of
its reply). The sample is then

    the bad path up to step t'  (context, no loss)
    + a revision turn: "Thought: I realize my previous action was wrong: ... Let
      me revise my plan. <the good step's thought>\\nAction: <the good action>"
    + the rest of the good path  (loss on every assistant turn).

The revision signal and the first good action share one assistant turn, so
turns still alternate; its observation is the good step's. Rows use the
``sft``/``refine`` format (``messages`` with a per-message ``train`` flag).

Fallbacks, each counted in the card: without a model the error step is the
*divergence* (the bad path's first step after the shared state); a reply
with no number, or a number past the bad path's end, also falls back to the
divergence (``error_step_fallback``); a number before the divergence names a
step the good path shares, which cannot be the error, and is raised to the
divergence (``error_step_clamped``).

Deviation, as in Agent-R: when ``t'`` lies after the divergence, the good
continuation's observations come from the shared state, not from the state
the extra bad steps reached — the revision turn is the signal to go back.
Agent-R builds its trees with MCTS; any stored tree (best-first or MCTS) works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palaestra.data._common import (
    DatasetCard,
    Encoder,
    Message,
    conversation_stats,
    msg,
    to_dataset,
    tokenizer_name,
)
from palaestra.model import ChatMessage, GenerationConfig, Model
from palaestra.trajectory import Episode, RunStore, SearchTree, TreeNode

if TYPE_CHECKING:
    from datasets import Dataset

ERROR_PROMPT = (
    "Here is an attempt at a task that did not succeed.\n\nTask:\n{task}\n\n{steps}\n\n"
    "Which step was the first wrong action? Reply with the step number only."
)
_INT = re.compile(r"\d+")


@dataclass
class TreeSource:
    """One run directory's search trees with their episodes."""

    path: str
    run_id: str
    trees: list[tuple[Episode, SearchTree]]


def load_trees(run_dirs: Iterable[str | Path]) -> list[TreeSource]:
    """Every stored search tree of each run directory (read-only), with its episode."""
    out: list[TreeSource] = []
    for d in run_dirs:
        with RunStore(d, readonly=True) as store:
            run = store.run()
            found: list[tuple[Episode, SearchTree]] = []
            for episode_id, tree in store.trees():
                ep = store.get(episode_id)
                if ep is not None and ep.outcome != "error":
                    found.append((ep, tree))
        out.append(TreeSource(str(d), run.run_id if run else Path(d).name, found))
    return out


def _has_success(tree: SearchTree, kids: dict[int, list[int]], node: int) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if tree.nodes[n].success:
            return True
        stack.extend(kids.get(n, []))
    return False


def _leaves(kids: dict[int, list[int]], node: int) -> list[int]:
    out: list[int] = []
    stack = [node]
    while stack:
        n = stack.pop()
        below = kids.get(n, [])
        if not below:
            out.append(n)
        stack.extend(below)
    return out


def contrast_paths(tree: SearchTree, max_pairs: int) -> list[tuple[int, int]]:
    """``(bad_leaf, good_leaf)`` pairs that part at a shared state (see the module docstring)."""
    kids: dict[int, list[int]] = {}
    for n in tree.nodes:
        if n.parent is not None:
            kids.setdefault(n.parent, []).append(n.id)
    pairs: list[tuple[int, int]] = []
    for parent in sorted(kids, key=lambda i: (tree.nodes[i].depth, i)):
        children = kids[parent]
        good = [c for c in children if _has_success(tree, kids, c)]
        bad = [c for c in children if c not in good]
        for g in good[:1]:
            g_leaf = min(
                (n for n in _leaves(kids, g) if tree.nodes[n].success),
                key=lambda i: (tree.nodes[i].depth, i),
            )
            for b in bad:
                leaves = [tree.nodes[i] for i in _leaves(kids, b)]
                b_leaf = min(leaves, key=_badness)
                pairs.append((b_leaf.id, g_leaf))
                if len(pairs) >= max_pairs:
                    return pairs
    return pairs


def _badness(n: TreeNode) -> tuple[int, float, int]:
    # a failed terminal state first, then the lowest value, then the earliest
    return (0 if n.terminal and not n.success else 1, n.value or 0.0, n.id)


def error_prompt(tree: SearchTree, bad_leaf: int) -> list[ChatMessage]:
    """The actor's question: the bad path as numbered steps (step k = the k-th action)."""
    path = tree.path(bad_leaf)
    lines = [f"Step {n.depth}:\nAction: {n.action}\nObservation: {n.observation}" for n in path[1:]]
    text = ERROR_PROMPT.format(task=path[0].observation, steps="\n\n".join(lines))
    return [
        ChatMessage(role="system", content=tree.system_prompt),
        ChatMessage(role="user", content=text),
    ]


def pick_error_step(reply: str | None, divergence: int, last: int) -> tuple[int, str]:
    """The error step from the actor's reply, and how it was decided (see the docstring)."""
    if reply is None:
        return divergence, "divergence"
    m = _INT.search(reply)
    if m is None or int(m.group()) > last or int(m.group()) < 1:
        return divergence, "fallback"
    step = int(m.group())
    if step < divergence:
        return divergence, "clamped"
    return step, "model"


def revision_turn(bad: TreeNode, good: TreeNode) -> str:
    """The assistant turn that revises: the signal, then the good step's thought and action."""
    thought = f" {good.thought}" if good.thought else ""
    return (
        f'Thought: I realize my previous action was wrong: "{bad.action}" does not bring me '
        f"closer to the goal. Let me revise my plan.{thought}\nAction: {good.action}"
    )


def splice(tree: SearchTree, bad_leaf: int, good_leaf: int, error_step: int) -> list[Message]:
    """Bad path to ``error_step`` (no loss), the revision turn, the good continuation (loss)."""
    bad_path = tree.path(bad_leaf)
    good_path = tree.path(good_leaf)
    shared = next(
        i for i, (a, b) in enumerate(zip(bad_path, good_path, strict=False)) if a.id != b.id
    )
    messages = [msg(m.role, m.content, False) for m in tree.messages(bad_path[error_step].id)]
    first, *rest = good_path[shared:]
    messages += [
        msg("assistant", revision_turn(bad_path[error_step], first), True),
        msg("user", first.observation),
    ]
    for n in rest:
        messages += [msg("assistant", n.raw_output, True), msg("user", n.observation)]
    return messages


def build_reflect(
    run_dirs: Iterable[str | Path] | None = None,
    *,
    sources: Sequence[TreeSource] | None = None,
    model: Model | None = None,
    max_per_tree: int = 2,
    generation: GenerationConfig | None = None,
    tokenizer: Encoder | None = None,
) -> tuple[Dataset, DatasetCard]:
    """Agent-R revision data from the runs' search trees (see the module docstring)."""
    if max_per_tree < 1:
        raise ValueError(f"max_per_tree must be at least 1, got {max_per_tree}")
    srcs = list(sources) if sources is not None else load_trees(run_dirs or [])
    counts: dict[str, int] = {"trees": 0, "trees_with_pairs": 0, "pairs": 0}
    todo: list[tuple[TreeSource, Episode, SearchTree, int, int]] = []
    for src in srcs:
        for ep, tree in src.trees:
            counts["trees"] += 1
            found = contrast_paths(tree, max_per_tree)
            counts["trees_with_pairs"] += bool(found)
            todo += [(src, ep, tree, b, g) for b, g in found]
    counts["pairs"] = len(todo)
    replies: list[str | None] = [None] * len(todo)
    if model is not None and todo:
        config = generation or GenerationConfig(max_new_tokens=16, temperature=0.0)
        prompts = [error_prompt(tree, b) for _, _, tree, b, _ in todo]
        for i in range(0, len(prompts), 16):
            outs = model.generate(prompts[i : i + 16], config)
            replies[i : i + len(outs)] = [o.text for o in outs]
    rows: list[dict[str, Any]] = []
    for (src, ep, tree, b, g), reply in zip(todo, replies, strict=True):
        bad_path, good_path = tree.path(b), tree.path(g)
        divergence = next(
            i for i, (x, y) in enumerate(zip(bad_path, good_path, strict=False)) if x.id != y.id
        )
        step, how = pick_error_step(reply, divergence, bad_path[-1].depth)
        counts[f"error_step_{how}"] = counts.get(f"error_step_{how}", 0) + 1
        rows.append(
            {
                "messages": splice(tree, b, g, step),
                "task_id": ep.task.task_id,
                "env_id": ep.task.env_id,
                "source": src.run_id,
                "error_step": step,
                "divergence_step": divergence,
                "error_step_source": how,
                "bad_action": bad_path[step].action,
                "good_action": good_path[divergence].action,
            }
        )
    counts["rows"] = len(rows)
    card = DatasetCard(
        builder="reflect",
        sources=[f"{s.path} ({s.run_id})" for s in srcs],
        parameters={
            "model": model.id if model is not None else None,
            "max_per_tree": max_per_tree,
        },
        counts=counts,
        tokens=conversation_stats([r["messages"] for r in rows], tokenizer),
        tokenizer=tokenizer_name(tokenizer),
        notes="Loss on the revision turn and the good continuation only; the bad path "
        "(shared prefix included) is context without loss.",
    )
    return to_dataset(rows), card
