"""The curriculum: the next iteration's training tasks, from this iteration's results.

Follows the self-evolving curriculum of WebRL ("WebRL: Training LLM Web
Agents via Self-Evolving Online Curriculum Reinforcement Learning", Qi et
al. 2024) and PAE's task proposer ("Proposer-Agent-Evaluator", Zhou et al.
2024) in spirit: new tasks come from what the agent failed, filtered to those
that are neither trivial nor hopeless for it. Our families are procedural, so
instead of an LLM writing task variants we move the *generator* around what
failed:

- tasks are grouped in cells (environment × difficulty); each active cell's
  success rate on the last iteration's rollouts places it as mastered
  (``>= high``), in the learning zone, or too hard (``< low``);
- the learning zone gets the largest share of the next tasks, too-hard cells
  a smaller one, mastered cells the floor — and a mastered cell unlocks the
  next difficulty of its environment (difficulty up where the agent succeeds);
- targeted variants: every task of the next iteration is a fresh seed (never
  a task seen before) in the cell — and with the same generator ``params`` —
  of the tasks that failed, in proportion to the failures.

Deviation: WebRL's proposer is an LLM writing new instructions, and its
filter is a critic's score; ours reads success rates from the environment's
checker, which procedural families have. An LLM proposer for families with
natural-language task spaces is not built here.

Held-out tasks are never training tasks: :func:`check_no_leak` refuses a
training task on the ``heldout`` split or one that appears (perturbed or
not) in an evaluation suite, and :func:`propose` runs it on what it returns.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field, JsonValue

from palaestra.env import DIFFICULTIES, Difficulty, Task, tasks
from palaestra.evolve._config import CurriculumConfig
from palaestra.trajectory import Episode

#: Seeds of iteration ``i`` start at ``i * SEED_STRIDE`` so no training task repeats.
SEED_STRIDE = 100_000


class Cell(BaseModel):
    env: str
    difficulty: Difficulty
    params: dict[str, JsonValue] = Field(default_factory=dict[str, JsonValue])
    episodes: int = 0
    successes: int = 0
    share: float = 0.0
    zone: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.env, self.difficulty, repr(sorted(self.params.items())))

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


class Plan(BaseModel):
    """What the curriculum decided for one iteration (stored as ``curriculum.json``)."""

    iteration: int
    cells: list[Cell]
    tasks: dict[str, int] = Field(description="Tasks per 'env/difficulty'.")
    notes: list[str] = Field(default_factory=list[str])


def check_no_leak(train: Iterable[Task], eval_tasks: Iterable[Task]) -> None:
    """Refuse training tasks from the heldout split or from any evaluation suite."""
    from palaestra.eval import split_perturbation

    train = list(train)
    held = [t.task_id for t in train if t.split == "heldout"]
    if held:
        raise ValueError(
            f"{len(held)} training task(s) are on the heldout split (e.g. {held[0]}); "
            "held-out tasks are never trained on"
        )
    evaluated = {split_perturbation(t)[0].task_id for t in eval_tasks}
    leaked = [t.task_id for t in train if split_perturbation(t)[0].task_id in evaluated]
    if leaked:
        raise ValueError(
            f"{len(leaked)} training task(s) are evaluation tasks (e.g. {leaked[0]}); "
            "training and evaluation tasks must not overlap"
        )


def _allocate(shares: Sequence[float], total: int) -> list[int]:
    """Largest-remainder rounding of ``shares`` (summing to 1) to integers summing to ``total``."""
    raw = [s * total for s in shares]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def initial_cells(
    envs: Sequence[str],
    difficulties: Sequence[Difficulty],
    params: dict[str, dict[str, JsonValue]] | None = None,
) -> list[Cell]:
    """One cell per environment and difficulty, with the environment's generator ``params``."""
    params = params or {}
    return [
        Cell(env=e, difficulty=d, params=dict(params.get(e, {})))
        for e in envs
        for d in difficulties
    ]


def assess(cells: Sequence[Cell], episodes: Iterable[Episode]) -> list[Cell]:
    """``cells`` with the success counts of ``episodes`` (matched by env and difficulty)."""
    by_key: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for ep in episodes:
        if ep.outcome == "error":
            continue  # an infrastructure failure says nothing about the agent
        by_key[(ep.task.env_id, ep.task.difficulty)].append(ep)
    out: list[Cell] = []
    for c in cells:
        eps = by_key.get((c.env, c.difficulty), [])
        ok = sum(ep.outcome == "success" for ep in eps)
        out.append(c.model_copy(update={"episodes": len(eps), "successes": ok}))
    return out


def next_cells(cells: Sequence[Cell], config: CurriculumConfig) -> tuple[list[Cell], list[str]]:
    """Shares of the next iteration per cell, unlocking harder cells (see the module docstring)."""
    notes: list[str] = []
    active = list(cells)
    have = {(c.env, c.difficulty) for c in active}
    for c in list(active):
        if c.episodes and c.rate >= config.high:
            i = DIFFICULTIES.index(c.difficulty)
            if i + 1 < len(DIFFICULTIES) and (c.env, DIFFICULTIES[i + 1]) not in have:
                harder = Cell(env=c.env, difficulty=DIFFICULTIES[i + 1], params=c.params)
                active.append(harder)
                have.add((c.env, harder.difficulty))
                notes.append(
                    f"{c.env} {c.difficulty}: {c.rate:.0%} >= {config.high:.0%}, "
                    f"unlocking {harder.difficulty}"
                )
    weights: list[float] = []
    for c in active:
        if not c.episodes:
            zone, w = "new", 1.0
        elif c.rate >= config.high:
            zone, w = "mastered", 0.0
        elif c.rate < config.low:
            zone, w = "too hard", 0.5 * (1.0 - c.rate)
        else:
            zone, w = "learning", 1.0 + (1.0 - c.rate)
        c.zone = zone
        weights.append(w)
    total = sum(weights) or 1.0
    raw = [w / total for w in weights]
    # every active cell keeps at least the floor (no forgetting), then renormalise
    floored = [max(r, config.floor) for r in raw]
    norm = sum(floored)
    for c, s in zip(active, floored, strict=True):
        c.share = s / norm
    return active, notes


def propose(
    iteration: int,
    cells: Sequence[Cell],
    per_env: int,
    eval_tasks: Iterable[Task] = (),
    *,
    seed: int = 0,
) -> tuple[list[Task], Plan]:
    """``per_env`` fresh training tasks per environment, split over its cells by share."""
    envs = list(dict.fromkeys(c.env for c in cells))
    out: list[Task] = []
    counts: Counter[str] = Counter()
    for env in envs:
        env_cells = [c for c in cells if c.env == env]
        shares = [c.share for c in env_cells]
        total = sum(shares)
        shares = [s / total for s in shares] if total > 0 else [1 / len(env_cells)] * len(env_cells)
        for c, k in zip(env_cells, _allocate(shares, per_env), strict=True):
            if k == 0:
                continue
            # Fresh seeds: a block per (iteration, difficulty), so no task repeats across
            # iterations and arms see the same tasks.
            start = iteration * SEED_STRIDE + DIFFICULTIES.index(c.difficulty) * (SEED_STRIDE // 4)
            start += random.Random(f"{seed}:{env}:{iteration}").randrange(SEED_STRIDE // 8)
            params: dict[str, Any] = dict(c.params)
            out += tasks(env, "train", n=k, difficulty=c.difficulty, start=start, **params)
            counts[f"{env}/{c.difficulty}"] += k
    check_no_leak(out, eval_tasks)
    return out, Plan(iteration=iteration, cells=list(cells), tasks=dict(counts))
