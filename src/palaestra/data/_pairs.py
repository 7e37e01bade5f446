"""``pairs``: preference pairs for DPO from episodes that succeeded and failed on the same task.

Two kinds, both in TRL's conversational preference format (``prompt``: the
shared history; ``chosen``/``rejected``: ONE assistant message each):

- ``trajectory`` (AgentGym's DPO, Xi et al., 2024, after ETO, Song et al.,
  "Trial and Error: Exploration-Based Trajectory Optimization for LLM Agents",
  2024): a successful and a failed episode of the same task. Deviation: ETO
  contrasts whole trajectories; here the pair is their *first diverging agent
  turn*, with the shared history as the prompt, so observations never enter
  the compared completions (TRL's DPO cannot mask them) and the format
  matches the step-level pairs.
- ``step`` (Agent Q, Putta et al., "Agent Q: Advanced Reasoning and Learning
  for Autonomous AI Agents", 2024): all episodes of a task (several attempts,
  several runs) form a prefix tree of turns; at every state reached by
  identical histories, each distinct next turn gets a Monte-Carlo value (the
  success rate of the episodes that took it). Agent Q estimates these values
  with MCTS and an AI critic; we use the outcomes the store already holds.
  The highest- and lowest-valued turns form a pair when their values differ by
  at least ``min_margin``.
- ``tree`` (Agent Q from search): the stored search trees of
  ``palaestra.agent.search`` runs. At every expanded state with two or more
  children, the child with the highest Q-value estimate (MCTS: the mean
  backed-up value; best-first: the best value in its subtree; a child never
  backed up counts its own value) is preferred over the lowest, when their Q
  differ by at least ``tree_margin``. This is Agent Q's step-level preference
  with the search's own Q in place of its MCTS + AI-critic mix.

Episodes with an ``error`` outcome are ignored; success means ``score >= threshold``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palaestra.data._common import (
    DatasetCard,
    Encoder,
    Message,
    Source,
    TokenStats,
    counter,
    load_sources,
    source_names,
    to_dataset,
    tokenizer_name,
)
from palaestra.trajectory import Episode, SearchTree, TreeNode

if TYPE_CHECKING:
    from datasets import Dataset


def _plain(ep: Episode, upto: int) -> list[Message]:
    return [{"role": m.role, "content": m.content} for m in ep.messages[:upto]]


def _row(
    kind: str, ep: Episode, prompt: list[Message], chosen: str, rejected: str, **extra: Any
) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "task_id": ep.task.task_id,
        "env_id": ep.task.env_id,
        "kind": kind,
        "chosen_value": float(extra.get("chosen_value", 1.0)),
        "rejected_value": float(extra.get("rejected_value", 0.0)),
        "depth": int(extra.get("depth", 0)),
    }


def _divergence(a: Episode, b: Episode) -> int | None:
    """Index of the first message where ``a`` and ``b`` differ, if it is an assistant turn."""
    for i, (ma, mb) in enumerate(zip(a.messages, b.messages, strict=False)):
        if ma.content != mb.content or ma.role != mb.role:
            ok = i >= 2 and ma.role == "assistant" and mb.role == "assistant"
            return i if ok else None
    return None


def trajectory_pairs(
    episodes: Sequence[Episode], threshold: float, max_per_task: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    counts = {"trajectory_candidates": 0, "trajectory_no_divergence": 0}
    by_task: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_task[ep.task.task_id].append(ep)
    rows: list[dict[str, Any]] = []
    for eps in by_task.values():
        wins = sorted((e for e in eps if e.score >= threshold), key=lambda e: e.n_steps)
        losses = [e for e in eps if e.score < threshold]
        made = 0
        for j, lose in enumerate(losses):
            if made >= max_per_task or not wins:
                break
            win = wins[j % len(wins)]
            counts["trajectory_candidates"] += 1
            i = _divergence(win, lose)
            if i is None:
                counts["trajectory_no_divergence"] += 1
                continue
            rows.append(
                _row(
                    "trajectory",
                    win,
                    _plain(win, i),
                    win.messages[i].content,
                    lose.messages[i].content,
                    depth=(i - 2) // 2,
                )
            )
            made += 1
    return rows, counts


def step_pairs(
    episodes: Sequence[Episode], threshold: float, min_margin: float
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    # node (hash of the history) -> next turn -> outcomes; plus one episode that reached it
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    where: dict[str, tuple[Episode, int]] = {}
    for ep in episodes:
        h = hashlib.sha256()
        win = 1.0 if ep.score >= threshold else 0.0
        for i, m in enumerate(ep.messages):
            if m.role == "assistant" and i >= 2:
                node = h.hexdigest()
                values[node][m.content].append(win)
                where.setdefault(node, (ep, i))
            h.update(f"\x00{m.role}\x00{m.content}".encode())
    rows: list[dict[str, Any]] = []
    branching = 0
    for node, children in values.items():
        if len(children) < 2:
            continue
        branching += 1
        scored = sorted(
            ((sum(v) / len(v), len(v), text) for text, v in children.items()),
            key=lambda t: (-t[0], -t[1], t[2]),
        )
        best, worst = scored[0], scored[-1]
        if best[0] - worst[0] < min_margin:
            continue
        ep, i = where[node]
        rows.append(
            _row(
                "step",
                ep,
                _plain(ep, i),
                best[2],
                worst[2],
                chosen_value=best[0],
                rejected_value=worst[0],
                depth=(i - 2) // 2,
            )
        )
    return rows, {"step_states": len(values), "step_branching_states": branching}


def _q(n: TreeNode) -> float:
    return n.q if n.q is not None else (n.value or 0.0)


def tree_pairs(
    trees: Sequence[tuple[Episode, SearchTree]], margin: float
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Step-level pairs from search trees (the ``tree`` kind in the module docstring)."""
    rows: list[dict[str, Any]] = []
    branching = 0
    for ep, tree in trees:
        kids: dict[int, list[TreeNode]] = defaultdict(list)
        for n in tree.nodes:
            if n.parent is not None:
                kids[n.parent].append(n)
        for parent, children in kids.items():
            if len(children) < 2:
                continue
            branching += 1
            ranked = sorted(children, key=lambda c: (-_q(c), -c.samples, c.id))
            best, worst = ranked[0], ranked[-1]
            if _q(best) - _q(worst) < margin or best.raw_output == worst.raw_output:
                continue
            prompt = [{"role": m.role, "content": m.content} for m in tree.messages(parent)]
            rows.append(
                _row(
                    "tree",
                    ep,
                    prompt,
                    best.raw_output,
                    worst.raw_output,
                    chosen_value=_q(best),
                    rejected_value=_q(worst),
                    depth=tree.nodes[parent].depth,
                )
            )
    return rows, {"trees": len(trees), "tree_branching_states": branching}


def pair_stats(rows: Sequence[dict[str, Any]], tokenizer: Encoder | None) -> TokenStats:
    count = counter(tokenizer)
    per_row: list[int] = []
    trained = 0
    for r in rows:
        p = sum(count(m["content"]) for m in r["prompt"])
        c = count(r["chosen"][0]["content"]) + count(r["rejected"][0]["content"])
        trained += c
        per_row.append(p + c)
    return TokenStats(
        unit="words" if tokenizer is None else "tokens",
        total=sum(per_row),
        trained=trained,
        mean_per_row=sum(per_row) / len(per_row) if per_row else 0.0,
        max_per_row=max(per_row, default=0),
    )


def build_pairs(
    run_dirs: Iterable[str | Path] | None = None,
    *,
    sources: list[Source] | None = None,
    kinds: Sequence[str] = ("trajectory", "step"),
    threshold: float = 1.0,
    max_per_task: int = 4,
    min_margin: float = 0.5,
    tree_margin: float = 0.1,
    tokenizer: Encoder | None = None,
) -> tuple[Dataset, DatasetCard]:
    """DPO pairs of the runs' episodes (see the module docstring). Identical pairs are merged."""
    bad = [k for k in kinds if k not in ("trajectory", "step", "tree")]
    if bad:
        raise ValueError(f"unknown pair kinds {bad}; choose trajectory, step and/or tree")
    srcs = sources if sources is not None else load_sources(run_dirs or [])
    eps = [e for s in srcs for e in s.episodes if e.outcome != "error"]
    counts: dict[str, int] = {"episodes": len(eps)}
    rows: list[dict[str, Any]] = []
    if "trajectory" in kinds:
        r, c = trajectory_pairs(eps, threshold, max_per_task)
        rows += r
        counts.update(c)
    if "step" in kinds:
        r, c = step_pairs(eps, threshold, min_margin)
        rows += r
        counts.update(c)
    if "tree" in kinds:
        from palaestra.data._reflect import load_trees

        trees = [t for ts in load_trees(s.path for s in srcs) for t in ts.trees]
        r, c = tree_pairs(trees, tree_margin)
        rows += r
        counts.update(c)
    seen: set[tuple[str, str]] = set()
    unique: list[dict[str, Any]] = []
    for r in rows:
        key = (r["kind"], repr((r["prompt"], r["chosen"], r["rejected"])))
        if key not in seen:
            seen.add(key)
            unique.append(r)
    counts["trajectory_pairs"] = sum(r["kind"] == "trajectory" for r in unique)
    counts["step_pairs"] = sum(r["kind"] == "step" for r in unique)
    if "tree" in kinds:
        counts["tree_pairs"] = sum(r["kind"] == "tree" for r in unique)
    counts["rows"] = len(unique)
    card = DatasetCard(
        builder="pairs",
        sources=source_names(srcs),
        parameters={
            "kinds": list(kinds),
            "threshold": threshold,
            "max_per_task": max_per_task,
            "min_margin": min_margin,
            **({"tree_margin": tree_margin} if "tree" in kinds else {}),
        },
        counts=counts,
        tokens=pair_stats(unique, tokenizer),
        tokenizer=tokenizer_name(tokenizer),
        notes="Token 'with loss' counts chosen + rejected completions.",
    )
    return to_dataset(unique), card
