"""The run store: one SQLite file per run directory, append-only, crash-safe, resumable.

Layout: ``RUN_DIR/run.sqlite`` in WAL mode (readers — the viewer, reports —
see a consistent snapshot while a rollout is writing). One transaction per
finished episode, so a killed process loses at most the episodes that were
still in flight, and never leaves a half-written one. Episodes are keyed by
``task_id#attempt``: writing the same key twice is a no-op, which makes a
restarted run idempotent — it asks :meth:`RunStore.done` what is finished
and runs only the rest. The one exception is an ``error`` episode, which a
later attempt at the same key may replace (infrastructure failures are
retried, never kept as a result when a retry succeeded).

A stored episode's body is otherwise never rewritten; :meth:`RunStore.annotate`
may only add or set keys of the ``metadata`` of stored episodes (a resumed RL
run marks the episodes its restart discarded), all in one transaction.

Search trees (``palaestra.agent.search``) live in their own ``trees`` table,
one row per episode id, written in the same transaction as the episode: a
search agent puts its :class:`SearchTree` in ``Episode.metadata["search_tree"]``
and :meth:`RunStore.add` moves it there (the stored episode body no longer
holds it; ``metadata["search"]`` keeps a small summary). The table is
additive: stores written before it existed open unchanged (the table is
created on the first writable open; a read-only open of such a store simply
has no trees), and its rows carry their own ``TREE_SCHEMA_VERSION``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

# Defined in palaestra/errors.py with every other exception; re-exported from here, where
# it was defined before (palaestra.trajectory re-exports it too).
from palaestra.errors import StoreError as StoreError
from palaestra.trajectory._schema import (
    SCHEMA_VERSION,
    TREE_METADATA_KEY,
    TREE_SCHEMA_VERSION,
    Episode,
    Outcome,
    Run,
    SearchTree,
)

DB_NAME = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    episode_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    env_id TEXT NOT NULL,
    split TEXT NOT NULL,
    difficulty TEXT NOT NULL,
    outcome TEXT NOT NULL,
    score REAL NOT NULL,
    progress REAL NOT NULL,
    n_steps INTEGER NOT NULL,
    finished_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_env ON episodes (env_id, outcome);
CREATE TABLE IF NOT EXISTS trees (episode_id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class RunStore:
    """Read and append the episodes of one run. Safe to share between threads.

    Args:
        run_dir: The run directory; ``run.sqlite`` inside it holds the run. A
            writable open creates the directory and the store when missing.
        readonly: Open without writing anything (the viewer, reports); the store
            must exist then.

    Raises:
        StoreError: ``readonly`` and no store in ``run_dir``; the file is not a run
            store; or it was written with another trajectory schema version.
    """

    def __init__(self, run_dir: str | Path, *, readonly: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if readonly and not self.path.exists():
            raise StoreError(f"{self.run_dir} is not a run directory (no {DB_NAME})")
        if not readonly:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self.readonly = readonly
        try:
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable against process crashes (SIGKILL) in WAL mode;
                # only an OS crash could lose the last commits.
                self._conn.execute("PRAGMA synchronous=NORMAL")
                with self._conn:
                    self._conn.executescript(_SCHEMA)
                    self._conn.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
            version = self._meta("schema_version")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a readable run store: {e}") from e
        if version is not None and int(version) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written with trajectory schema v{version}; this Palaestra "
                f"reads v{SCHEMA_VERSION}. Use the matching Palaestra version to read or export it."
            )

    # ---- run header -------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def write_run(self, run: Run) -> None:
        """Record the run header (first write wins: a resumed run keeps its header).

        Args:
            run: The :class:`Run` header: what was run, by what, where.
        """
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('run', ?)", (run.model_dump_json(),)
            )

    def run(self) -> Run | None:
        """The run header.

        Returns:
            The :class:`Run` recorded by :meth:`write_run`, or None if none was.
        """
        raw = self._meta("run")
        return None if raw is None else Run.model_validate_json(raw)

    # ---- episodes ------------------------------------------------------------------

    def add(self, episode: Episode) -> bool:
        """Append one finished episode atomically, in one transaction.

        An existing ``error`` episode with the same id is replaced. A search tree in
        ``metadata["search_tree"]`` goes to the ``trees`` table (see the module docstring).

        Args:
            episode: The finished :class:`Episode`; its id is ``task_id#attempt``.

        Returns:
            True if it was written; False if an episode with that id (not an
            ``error`` one) was already stored, which is left as it was.
        """
        t = episode.task
        tree: SearchTree | None = None
        if TREE_METADATA_KEY in episode.metadata:
            meta = dict(episode.metadata)
            tree = SearchTree.model_validate(meta.pop(TREE_METADATA_KEY))
            episode = episode.model_copy(update={"metadata": meta})
        with self._lock, self._conn:
            row = self._conn.execute(
                "SELECT outcome FROM episodes WHERE episode_id = ?", (episode.episode_id,)
            ).fetchone()
            if row is not None and row[0] != "error":
                return False
            seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM episodes").fetchone()
            self._conn.execute(
                "INSERT OR REPLACE INTO episodes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    episode.episode_id,
                    seq[0],
                    t.task_id,
                    episode.attempt,
                    t.env_id,
                    t.split,
                    t.difficulty,
                    episode.outcome,
                    episode.score,
                    episode.progress,
                    episode.n_steps,
                    episode.finished_at.isoformat(),
                    episode.model_dump_json(),
                ),
            )
            # A replaced error episode must not keep a tree that belonged to it.
            self._conn.execute("DELETE FROM trees WHERE episode_id = ?", (episode.episode_id,))
            if tree is not None:
                self._conn.execute(
                    "INSERT INTO trees VALUES (?, ?)", (episode.episode_id, tree.model_dump_json())
                )
        return True

    def annotate(self, episode_ids: Iterable[str], metadata: Mapping[str, Any]) -> int:
        """Set ``metadata``'s keys in the metadata of stored episodes, in one transaction.

        Nothing else of an episode changes (its outcome, score, steps, order); a
        crash leaves either every episode annotated or none.

        Args:
            episode_ids: The episodes to annotate; ids that are not stored are skipped.
            metadata: Keys and JSON-serialisable values to set (existing keys are overwritten).

        Returns:
            How many stored episodes were annotated.
        """
        ids = list(dict.fromkeys(episode_ids))
        n = 0
        with self._lock, self._conn:
            for episode_id in ids:
                row = self._conn.execute(
                    "SELECT body FROM episodes WHERE episode_id = ?", (episode_id,)
                ).fetchone()
                if row is None:
                    continue
                ep = Episode.model_validate_json(row[0])
                ep = ep.model_copy(update={"metadata": {**ep.metadata, **metadata}})
                self._conn.execute(
                    "UPDATE episodes SET body = ? WHERE episode_id = ?",
                    (ep.model_dump_json(), episode_id),
                )
                n += 1
        return n

    def done(self, *, include_errors: bool = False) -> set[str]:
        """Episode ids already finished: what a resumed run skips.

        Args:
            include_errors: Count ``error`` episodes as finished too (by default a
                resumed run retries them).

        Returns:
            The set of stored episode ids.
        """
        sql = "SELECT episode_id FROM episodes"
        if not include_errors:
            sql += " WHERE outcome != 'error'"
        with self._lock:
            return {r[0] for r in self._conn.execute(sql)}

    def episodes(
        self,
        *,
        env_id: str | None = None,
        outcome: Outcome | Iterable[Outcome] | None = None,
        split: str | None = None,
    ) -> Iterator[Episode]:
        """Stored episodes in the order they finished, optionally filtered.

        Args:
            env_id: Only this environment's episodes.
            outcome: Only episodes with this outcome, or with one of these.
            split: Only episodes of tasks from this split.

        Returns:
            An iterator of :class:`Episode`. The rows are read at the first ``next``;
            episodes stored after that are not included.
        """
        where: list[str] = []
        args: list[Any] = []
        if env_id is not None:
            where.append("env_id = ?")
            args.append(env_id)
        if split is not None:
            where.append("split = ?")
            args.append(split)
        if outcome is not None:
            outs = [outcome] if isinstance(outcome, str) else list(outcome)
            where.append(f"outcome IN ({','.join('?' * len(outs))})")
            args.extend(outs)
        sql = "SELECT body FROM episodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        for (body,) in rows:
            yield Episode.model_validate_json(body)

    def get(self, episode_id: str) -> Episode | None:
        """One stored episode.

        Args:
            episode_id: The episode's id, ``task_id#attempt``.

        Returns:
            The :class:`Episode`, or None if no episode has that id.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM episodes WHERE episode_id = ?", (episode_id,)
            ).fetchone()
        return None if row is None else Episode.model_validate_json(row[0])

    def _has_trees(self) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trees'"
        ).fetchone()
        return row is not None

    def _tree(self, episode_id: str, body: str) -> SearchTree:
        tree = SearchTree.model_validate_json(body)
        if tree.schema_version != TREE_SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: the search tree of {episode_id!r} has format "
                f"v{tree.schema_version}; this Palaestra reads v{TREE_SCHEMA_VERSION}"
            )
        return tree

    def tree(self, episode_id: str) -> SearchTree | None:
        """The search tree stored with an episode.

        Args:
            episode_id: The episode's id.

        Returns:
            Its :class:`SearchTree`, or None (not a search episode, or an older run).

        Raises:
            StoreError: The tree was written in another tree format version.
        """
        with self._lock:
            if not self._has_trees():
                return None
            row = self._conn.execute(
                "SELECT body FROM trees WHERE episode_id = ?", (episode_id,)
            ).fetchone()
        return None if row is None else self._tree(episode_id, row[0])

    def trees(self) -> Iterator[tuple[str, SearchTree]]:
        """Every stored ``(episode_id, tree)``, in the order the episodes finished.

        Raises:
            StoreError: A tree was written in another tree format version.
        """
        with self._lock:
            if not self._has_trees():
                return
            rows = self._conn.execute(
                "SELECT t.episode_id, t.body FROM trees t JOIN episodes e "
                "ON e.episode_id = t.episode_id ORDER BY e.seq"
            ).fetchall()
        for episode_id, body in rows:
            yield episode_id, self._tree(episode_id, body)

    def summary(self) -> dict[str, Any]:
        """Counts by outcome, plus mean score and progress over non-error episodes.

        Returns:
            ``{"episodes": total, "outcomes": {outcome: count}, "mean_score": ...,
            "mean_progress": ..., "scored": non-error count}``; the means are None
            when no episode is scored.
        """
        with self._lock:
            counts = dict(
                self._conn.execute("SELECT outcome, COUNT(*) FROM episodes GROUP BY outcome")
            )
            mean = self._conn.execute(
                "SELECT AVG(score), AVG(progress), COUNT(*) FROM episodes WHERE outcome != 'error'"
            ).fetchone()
        return {
            "episodes": sum(counts.values()),
            "outcomes": {k: int(v) for k, v in counts.items()},
            "mean_score": mean[0],
            "mean_progress": mean[1],
            "scored": mean[2],
        }

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])

    def close(self) -> None:
        """Close the database connection (``with RunStore(...)`` does it on exit)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- export --------------------------------------------------------------------

    def export_jsonl(self, path: str | Path) -> int:
        """Write every episode as JSON Lines, one ``Episode`` per line, atomically.

        Written to ``<path>.tmp`` and renamed, so ``path`` is never half-written.

        Args:
            path: The file to write (replaced if it exists).

        Returns:
            The number of episodes written.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        n = 0
        with tmp.open("w") as f:
            for ep in self.episodes():
                f.write(ep.model_dump_json() + "\n")
                n += 1
        tmp.replace(path)
        return n


def read_jsonl(path: str | Path) -> Iterator[Episode]:
    """Read episodes written by :meth:`RunStore.export_jsonl`."""
    with Path(path).open() as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield Episode.model_validate_json(line)
                except ValueError as e:
                    raise StoreError(f"{path}:{i}: not an episode: {e}") from e
