"""What the viewer knows about its runs: one read-only store per run and a summary cache.

The viewer reads each run's ``RunStore`` directly, so it shows runs that are
still being written: a read-only SQLite connection in WAL mode sees every
episode committed before each query. Listing and filtering need only a small
summary of each episode, but the store keeps episodes as whole JSON bodies, so
parsing all of them on every page load would cost seconds on a large run. We
therefore cache one :class:`EpisodeSummary` per episode and, on each request,
ask the store only which episode ids exist (cheap) and parse just the new
ones. The store is append-only except that an ``error`` episode may be
replaced by a later retry; cached error summaries are therefore re-read
every time (errors are rare, so this stays cheap).

Nothing here needs FastAPI; ``_app.py`` puts HTTP on top.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palaestra.trajectory import Episode, RunStore, SearchTree, StoreError
from palaestra.web._models import (
    DiffRow,
    EpisodeDiff,
    EpisodePage,
    EpisodeSummary,
    Facets,
    RunInfo,
    TaskEpisode,
)

#: The most episodes one page may hold.
MAX_PAGE = 500


class NotFound(LookupError):
    """A run or episode the viewer does not have (the API answers 404)."""


class BadRequest(ValueError):
    """A request the viewer cannot answer as asked (the API answers 400)."""


def summarize(ep: Episode) -> EpisodeSummary:
    """The list view of an episode."""
    meta = ep.metadata
    suite, group, perts = meta.get("suite"), meta.get("suite_group"), meta.get("perturbations")
    return EpisodeSummary(
        episode_id=ep.episode_id,
        task_id=ep.task.task_id,
        attempt=ep.attempt,
        env_id=ep.task.env_id,
        split=ep.task.split,
        difficulty=ep.task.difficulty,
        instruction=ep.task.instruction,
        outcome=ep.outcome,
        score=ep.score,
        progress=ep.progress,
        n_steps=ep.n_steps,
        prompt_tokens=ep.prompt_tokens,
        completion_tokens=ep.completion_tokens,
        wall_seconds=ep.wall_seconds,
        finished_at=ep.finished_at,
        suite=str(suite) if suite is not None else None,
        group=str(group) if group is not None else None,
        perturbations=[str(p) for p in perts] if isinstance(perts, list) else [],
        format_errors=sum(s.format_error is not None for s in ep.steps),
        invalid_actions=sum(s.invalid_action for s in ep.steps),
        limit_reason=ep.limit_reason,
        error=f"{ep.error.type}: {ep.error.message}" if ep.error else None,
    )


def same_action(a: str | None, b: str | None) -> bool:
    """Whether two steps took the same action; two format errors (no action) count as the same."""
    if a is None or b is None:
        return a is None and b is None
    return " ".join(a.split()) == " ".join(b.split())


def diff_rows(a: Episode, b: Episode) -> tuple[list[DiffRow], int | None]:
    """Align two episodes by step index; return the rows and the first divergent index.

    Index alignment (not an edit-distance alignment) is deliberate: both
    episodes start from the same state, so step ``i`` of each is the agent's
    ``i``-th decision, and the first index where they differ is where the
    trajectories part. Once one episode has ended its side is None.
    """
    rows: list[DiffRow] = []
    first: int | None = None
    for i in range(max(a.n_steps, b.n_steps)):
        sa = a.steps[i] if i < a.n_steps else None
        sb = b.steps[i] if i < b.n_steps else None
        act_a = sa.action if sa else None
        act_b = sb.action if sb else None
        same = sa is not None and sb is not None and same_action(act_a, act_b)
        if not same and first is None:
            first = i
        rows.append(DiffRow(index=i, action_a=act_a, action_b=act_b, same=same))
    return rows, first


@dataclass
class _Run:
    key: str
    store: RunStore
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Insertion order is the order the viewer first saw the episodes finish.
    summaries: dict[str, EpisodeSummary] = field(default_factory=dict[str, EpisodeSummary])

    def refresh(self) -> list[EpisodeSummary]:
        """Bring the cache up to date with the store; return the summaries in order."""
        with self.lock:
            if not self.summaries:
                for ep in self.store.episodes():
                    self.summaries[ep.episode_id] = summarize(ep)
            ids = self.store.done(include_errors=True)
            recheck = [k for k, s in self.summaries.items() if s.outcome == "error"]
            for k in list(self.summaries):
                if k not in ids:  # not expected of an append-only store, but stay truthful
                    del self.summaries[k]
            for k in recheck:
                ep = self.store.get(k)
                if ep is not None:
                    self.summaries[k] = summarize(ep)
            new = [ep for k in ids.difference(self.summaries) if (ep := self.store.get(k))]
            for ep in sorted(new, key=lambda e: (e.finished_at, e.episode_id)):
                self.summaries[ep.episode_id] = summarize(ep)
            return list(self.summaries.values())


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


class RunIndex:
    """The runs a viewer serves, keyed by a URL-safe id. Safe to share between threads."""

    def __init__(self, run_dirs: Sequence[str | Path]) -> None:
        self._runs: dict[str, _Run] = {}
        opened: list[RunStore] = []
        try:
            for d in run_dirs:
                store = RunStore(d, readonly=True)  # raises StoreError for a non-run
                opened.append(store)
                header = store.run()
                base = _slug(header.run_id if header else Path(d).resolve().name)
                key, n = base, 2
                while key in self._runs:
                    key, n = f"{base}-{n}", n + 1
                self._runs[key] = _Run(key, store)
        except StoreError:
            for s in opened:
                s.close()
            raise

    def close(self) -> None:
        for r in self._runs.values():
            r.store.close()

    def _run(self, key: str) -> _Run:
        try:
            return self._runs[key]
        except KeyError:
            raise NotFound(f"no run {key!r}; the viewer serves: {', '.join(self._runs)}") from None

    # ---- queries -------------------------------------------------------------------

    def runs(self) -> list[RunInfo]:
        out: list[RunInfo] = []
        for key, r in self._runs.items():
            header, s = r.store.run(), r.store.summary()
            outcomes: dict[str, int] = s["outcomes"]
            scored = int(s["scored"] or 0)
            suite = header.config.get("suite") if header else None
            out.append(
                RunInfo(
                    id=key,
                    path=str(r.store.run_dir),
                    run_id=header.run_id if header else "",
                    kind=header.kind if header else "?",
                    model=header.model_id if header else "?",
                    agent=header.agent if header else "?",
                    suite=str(suite) if suite is not None else None,
                    created_at=header.created_at if header else None,
                    episodes=int(s["episodes"]),
                    outcomes=outcomes,
                    success_rate=outcomes.get("success", 0) / scored if scored else None,
                    mean_progress=s["mean_progress"],
                )
            )
        return out

    def episodes(
        self,
        run: str,
        *,
        env: str | None = None,
        outcome: str | None = None,
        split: str | None = None,
        suite: str | None = None,
        group: str | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> EpisodePage:
        """One page of a run's episodes matching every given filter (``q``: substring of
        the task id or instruction, case-insensitive)."""
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"need offset >= 0 and 1 <= limit <= {MAX_PAGE}")
        r = self._run(run)
        every = r.refresh()
        wanted: dict[str, str | None] = {
            "env_id": env,
            "outcome": outcome,
            "split": split,
            "suite": suite,
            "group": group,
        }
        needle = q.lower() if q else None
        hits = [
            s
            for s in every
            if all(v is None or getattr(s, k) == v for k, v in wanted.items())
            and (
                needle is None
                or needle in s.task_id.lower()
                or needle in s.instruction.lower()
                or needle in s.episode_id.lower()
            )
        ]
        facets = Facets(
            env=_count(s.env_id for s in every),
            outcome=_count(s.outcome for s in every),
            split=_count(s.split for s in every),
            suite=_count(s.suite for s in every if s.suite is not None),
            group=_count(s.group for s in every if s.group is not None),
        )
        return EpisodePage(
            run=run,
            total=len(hits),
            offset=offset,
            limit=limit,
            episodes=hits[offset : offset + limit],
            facets=facets,
        )

    def episode(self, run: str, episode_id: str) -> Episode:
        ep = self._run(run).store.get(episode_id)
        if ep is None:
            raise NotFound(f"run {run!r} has no episode {episode_id!r}")
        return ep

    def tree(self, run: str, episode_id: str) -> SearchTree:
        """The search tree stored with an episode (search agents only)."""
        r = self._run(run)
        tree = r.store.tree(episode_id)
        if tree is None:
            if r.store.get(episode_id) is None:
                raise NotFound(f"run {run!r} has no episode {episode_id!r}")
            raise NotFound(f"episode {episode_id!r} of run {run!r} has no search tree")
        return tree

    def task_episodes(self, task_id: str) -> list[TaskEpisode]:
        """Every served episode of one task, run by run (for 'compare with' links)."""
        out: list[TaskEpisode] = []
        for key, r in self._runs.items():
            for s in r.refresh():
                if s.task_id == task_id:
                    out.append(
                        TaskEpisode(
                            run=key,
                            episode_id=s.episode_id,
                            attempt=s.attempt,
                            outcome=s.outcome,
                            score=s.score,
                            n_steps=s.n_steps,
                        )
                    )
        return out

    def diff(self, run_a: str, episode_a: str, run_b: str, episode_b: str) -> EpisodeDiff:
        a, b = self.episode(run_a, episode_a), self.episode(run_b, episode_b)
        if a.task.task_id != b.task.task_id:
            raise BadRequest(
                f"a diff needs two episodes of the same task; got {a.task.task_id!r} "
                f"and {b.task.task_id!r}"
            )
        rows, first = diff_rows(a, b)
        return EpisodeDiff(run_a=run_a, run_b=run_b, a=a, b=b, rows=rows, first_divergence=first)


def _count(values: Any) -> dict[str, int]:
    return dict(sorted(Counter(str(v) for v in values).items()))
