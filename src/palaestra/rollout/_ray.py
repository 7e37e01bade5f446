"""The Ray backend of the rollout engine: the same run settings on a Ray cluster.

The driver (the process that runs ``palaestra rollout --backend ray`` or
``palaestra eval --backend ray``) starts ``ray_workers`` actors. Each actor
builds its own model, agent and environment factory from the run's settings
and engine parts (:class:`~palaestra.rollout._build.EngineParts`: a rollout's
environment, or an eval's suite) — exactly as the local backend does, with
``build_engine`` — and runs a local :class:`RolloutEngine` (``concurrency``
episodes in flight, their model calls batched) on the chunks of work the
driver hands it. Work is handed out one chunk of (task, attempt) units at a
time, to whichever worker is free: a slow worker (a slow node, long episodes)
takes fewer chunks instead of holding up the run.

Episodes travel back as JSON (``Episode.model_dump_json``), never pickled
pydantic objects, and only the driver writes the run store: there is one
writer, and resuming works as it does locally — the driver skips the units
that ``store.done()`` already holds.

Failures: an ``error`` episode (environment or model infrastructure) is
retried inside the worker by its engine, as locally. A worker that dies
(process killed, node lost, out of memory) loses the chunk it was running and
nothing else, since a chunk's episodes come back together; the chunk is
handed to another worker, up to ``max_retries`` times, after which its units
are stored as ``error`` episodes (a re-run retries them). A dead worker is
replaced while the restart budget (``ray_workers * (max_retries + 1)``)
lasts. Exceptions raised by Palaestra code in a worker (bugs, bad config)
propagate to the driver, as they do locally.

Trade-off: a worker's batches span one chunk, so the last episodes of each
chunk see smaller batches. The default chunk (up to ``4 * concurrency``
episodes) keeps that tail small while leaving several chunks per worker to
balance. With an inference server (vLLM, SGLang) the server batches across
all workers anyway.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from palaestra.agent import ReflexionAgent, get_agent
from palaestra.env import Task
from palaestra.rollout._build import EngineParts, build_engine, load_model, reflexion_of
from palaestra.rollout._config import RunSettings
from palaestra.rollout._engine import RolloutEngine, RolloutStats, finish_episode
from palaestra.trajectory import Episode, ErrorInfo, RunStore

log = logging.getLogger(__name__)

#: Providers whose weights load into the worker process (they want a GPU when there is one).
LOCAL_WEIGHT_PROVIDERS = frozenset({"hf", "tiny", "gemma-270m"})

# (task as JSON, attempt) — what crosses the wire for one episode to run.
_WireUnit = list[tuple[str, int]]


def import_ray() -> ModuleType:
    """``ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            'the ray rollout backend needs Ray; install it with: pip install "palaestra[ray]"'
        ) from e
    return ray


def worker_options(config: RunSettings, cluster_gpus: float) -> dict[str, float]:
    """Ray resources for one worker actor.

    One CPU each. A worker that loads model weights itself (``hf/``, ``tiny``,
    ``gemma-270m``) also gets a GPU share when the cluster has GPUs — at most
    one each, split evenly when workers outnumber GPUs — because Ray hides the
    GPUs from actors that do not ask for them.
    """
    opts: dict[str, float] = {"num_cpus": 1}
    needs_model = get_agent(config.agent).needs_model
    provider = (config.model or "").partition("/")[0]
    if needs_model and provider in LOCAL_WEIGHT_PROVIDERS and cluster_gpus > 0:
        opts["num_gpus"] = min(1.0, cluster_gpus / config.ray_workers)
    return opts


class _StoreView:
    """Stands in for the run store inside a worker: says every unit outside the chunk is done.

    That makes the engine run exactly the chunk's units, with its usual grouping
    (one task's attempts back to back for Reflexion); the driver does the writing.
    """

    def __init__(self, done: set[str]) -> None:
        self._done = done

    def done(self) -> set[str]:
        return self._done

    def add(self, episode: Episode) -> bool:
        return True


class RolloutWorker:
    """The body of one Ray actor: a model, an agent, an environment factory and an engine."""

    def __init__(self) -> None:
        self.engine: RolloutEngine | None = None

    def setup(
        self,
        config_cls: type[RunSettings],
        config_json: str,
        run_id: str,
        hook: Callable[[], None] | None = None,
        parts: EngineParts | None = None,
    ) -> dict[str, str]:
        """Build everything once (loading a model may take a while); returns where it runs.

        ``parts`` left out: the config's own (a ``RolloutConfig``'s environment).
        """
        if hook is not None:
            hook()
        config = config_cls.model_validate_json(config_json)
        model = load_model(config)
        self.engine = build_engine(config, model, parts, run_id=run_id, store=None)
        return {"host": platform.node(), "pid": str(os.getpid())}

    def run_chunk(
        self, units: list[_WireUnit], memory: dict[str, list[str]]
    ) -> tuple[list[str], dict[str, int]]:
        """Run the chunk's episodes; returns them as JSON, and the engine's counters."""
        engine = self.engine
        if engine is None:
            raise RuntimeError("RolloutWorker.setup must run before run_chunk")
        by_id: dict[str, Task] = {}
        wanted: set[str] = set()
        attempts = 0
        for unit in units:
            for task_json, attempt in unit:
                task = Task.model_validate_json(task_json)
                by_id.setdefault(task.task_id, task)
                wanted.add(f"{task.task_id}#{attempt}")
                attempts = max(attempts, attempt + 1)
        others = {f"{tid}#{a}" for tid in by_id for a in range(attempts)} - wanted
        engine.store = cast(RunStore, _StoreView(others))
        engine.stats = RolloutStats()
        reflexion = reflexion_of(engine.agent)
        if reflexion is not None:
            # The driver's view of earlier attempts' lessons (stored ones, for resumed runs).
            reflexion.memory.update({k: list(v) for k, v in memory.items()})
        episodes = engine.run(list(by_id.values()), attempts)
        s = engine.stats
        counters = {
            "retries": s.retries,
            "model_calls": s.model_calls,
            "batches": s.batches,
            "completion_tokens": s.completion_tokens,
        }
        return [e.model_dump_json() for e in episodes], counters


@dataclass
class _Chunk:
    units: list[list[tuple[Task, int]]]
    failures: int = 0

    def wire(self) -> list[_WireUnit]:
        return [[(t.model_dump_json(), a) for t, a in unit] for unit in self.units]

    def pairs(self) -> Iterable[tuple[Task, int]]:
        return (p for unit in self.units for p in unit)


class RayRolloutBackend:
    """Run a run's settings on Ray; same interface as :class:`RolloutEngine` (``run``,
    ``stats``, ``on_episode``). See the module docstring.

    ``parts`` are the engine parts every worker builds its engine with (they are
    pickled by Ray); left out, a ``RolloutConfig``'s own, built in each worker.

    ``chunk_size`` (episodes per hand-out) defaults to the smaller of
    ``4 * concurrency`` and a quarter of each worker's share. ``worker_setup``
    runs first in every worker (e.g. to ``register_provider`` a custom model);
    it must be picklable by Ray (a module-level function, or a closure).
    ``init_kwargs`` go to ``ray.init`` when this backend starts Ray itself.
    """

    def __init__(
        self,
        config: RunSettings,
        *,
        run_id: str = "run",
        store: RunStore | None = None,
        chunk_size: int | None = None,
        worker_setup: Callable[[], None] | None = None,
        actor_options: dict[str, Any] | None = None,
        init_kwargs: dict[str, Any] | None = None,
        on_episode: Callable[[Episode, RolloutStats], None] | None = None,
        parts: EngineParts | None = None,
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.config = config
        self.parts = parts
        self.run_id = run_id
        self.store = store
        self.chunk_size = chunk_size
        self.worker_setup = worker_setup
        self.actor_options = actor_options
        self.init_kwargs = init_kwargs or {}
        self.on_episode = on_episode
        self.stats = RolloutStats()
        #: Live actor handles by slot (None once a slot is given up); tests kill these.
        self.workers: list[Any] = []
        #: Worker deaths seen and episodes handed out again because of them.
        self.deaths = 0
        self.requeued = 0
        #: Seconds from ``run`` until the first worker was ready (Ray start + setup).
        self.startup_seconds = 0.0

    # ---- public API -------------------------------------------------------------------

    def run(self, tasks: Sequence[Task], attempts: int = 1) -> list[Episode]:
        """Run every (task, attempt) not already in the store; returns the new episodes."""
        ray = import_ray()
        t0 = time.perf_counter()
        self.stats = RolloutStats()
        chunks = self._plan(tasks, attempts)
        results: list[Episode] = []
        if not chunks:
            return results
        started = not ray.is_initialized()
        if started:
            ray.init(**self._init_args())
        try:
            self._drive(ray, chunks, results, t0)
        finally:
            for w in self.workers:
                if w is not None:
                    with contextlib.suppress(Exception):  # already dead is fine
                        ray.kill(w)
            self.workers = []
            if started:
                ray.shutdown()
            self.stats.seconds = time.perf_counter() - t0
        return results

    # ---- planning ---------------------------------------------------------------------

    def _init_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "address": self.config.ray_address or None,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if not self.config.ray_address:
            # A local instance: I/O-bound workers may outnumber cores.
            args["num_cpus"] = max(os.cpu_count() or 1, self.config.ray_workers)
        return args | self.init_kwargs

    def _plan(self, tasks: Sequence[Task], attempts: int) -> list[_Chunk]:
        done = self.store.done() if self.store is not None else set[str]()
        in_order = get_agent(self.config.agent).attempts_in_order
        units: list[list[tuple[Task, int]]] = []
        for task in tasks:
            todo = [(task, a) for a in range(attempts) if f"{task.task_id}#{a}" not in done]
            self.stats.skipped += attempts - len(todo)
            if todo:
                units.extend([todo] if in_order else [[u] for u in todo])
        total = self.stats.total = sum(len(u) for u in units)
        size = self.chunk_size or max(
            1,
            min(
                4 * self.config.concurrency,
                math.ceil(total / (4 * self.config.ray_workers)),
            ),
        )
        chunks: list[_Chunk] = []
        for unit in units:
            if not chunks or sum(len(u) for u in chunks[-1].units) >= size:
                chunks.append(_Chunk([]))
            chunks[-1].units.append(unit)
        return chunks

    # ---- the driver loop --------------------------------------------------------------

    def _drive(
        self, ray: ModuleType, chunks: list[_Chunk], results: list[Episode], t0: float
    ) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        cfg = self.config
        options = self.actor_options or worker_options(
            cfg, float(ray.cluster_resources().get("GPU", 0))
        )
        actor_cls = ray.remote(RolloutWorker).options(**options)
        config_json = cfg.model_dump_json()
        memory = self._memory()
        queue = deque(chunks)
        pending: dict[Any, tuple[int, _Chunk | None]] = {}
        restarts_left = cfg.ray_workers * (cfg.max_retries + 1)
        any_ready = False
        last_death = ""

        def start(slot: int) -> None:
            actor = actor_cls.remote()
            self.workers[slot] = actor
            ref = actor.setup.remote(
                type(cfg), config_json, self.run_id, self.worker_setup, self.parts
            )
            pending[ref] = (slot, None)

        def hand_out(slot: int) -> None:
            if queue:
                chunk = queue.popleft()
                tids = {t.task_id for t, _ in chunk.pairs()}
                mem = {k: v for k, v in memory.items() if k in tids}
                ref = self.workers[slot].run_chunk.remote(chunk.wire(), mem)
                pending[ref] = (slot, chunk)

        self.workers = [None] * min(cfg.ray_workers, len(chunks))
        for slot in range(len(self.workers)):
            start(slot)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=60)
            if not ready:
                if not any_ready:
                    log.warning(
                        "no Ray worker has started after %.0f s; the cluster may lack the "
                        "resources each worker asks for (%s); it has %s",
                        time.perf_counter() - t0,
                        options,
                        ray.cluster_resources(),
                    )
                continue
            ref = ready[0]
            slot, chunk = pending.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as e:
                # Palaestra code raised in the worker: a bug or a bad config, as locally.
                cause = e.cause
                if isinstance(cause, ValueError | KeyError | ImportError):
                    raise cause from None
                raise
            except RayActorError as e:
                self.deaths += 1
                last_death = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                log.warning("Ray worker %d died: %s", slot, last_death)
                if chunk is not None:
                    self._requeue_or_fail(chunk, e, queue, results)
                if restarts_left > 0:
                    restarts_left -= 1
                    start(slot)
                else:
                    self.workers[slot] = None
                continue
            if chunk is None:
                if not any_ready:
                    any_ready = True
                    self.startup_seconds = time.perf_counter() - t0
            else:
                self._collect(value, results)
            hand_out(slot)
        if queue:
            left = sum(len(list(c.pairs())) for c in queue)
            raise RuntimeError(
                f"all Ray workers died with {left} episode(s) still to run (last: {last_death}); "
                "finished episodes are stored — re-run the same command to resume"
            )

    def _requeue_or_fail(
        self, chunk: _Chunk, e: Exception, queue: deque[_Chunk], results: list[Episode]
    ) -> None:
        chunk.failures += 1
        if chunk.failures <= self.config.max_retries:
            self.requeued += len(list(chunk.pairs()))
            queue.appendleft(chunk)  # first in line, so a retried chunk is not starved
            return
        cfg = self.config
        needs_model = get_agent(cfg.agent).needs_model
        error = ErrorInfo(
            type=type(e).__name__,
            message=f"the Ray worker died {chunk.failures} times running this episode: {e}",
            source="worker",
        )
        metadata = self.parts.episode_metadata if self.parts is not None else None
        for task, attempt in chunk.pairs():
            ep = Episode(
                run_id=self.run_id,
                task=task,
                attempt=attempt,
                agent=cfg.agent,
                model_id=cfg.model if needs_model and cfg.model else cfg.agent,
                outcome="error",
                error=error,
                metadata=dict(metadata(task, attempt)) if metadata is not None else {},
            )
            self._finish(ep, results)

    def _collect(self, value: tuple[list[str], dict[str, int]], results: list[Episode]) -> None:
        bodies, counters = value
        s = self.stats
        s.retries += counters["retries"]
        s.model_calls += counters["model_calls"]
        s.batches += counters["batches"]
        s.completion_tokens += counters["completion_tokens"]
        for body in bodies:
            self._finish(Episode.model_validate_json(body), results)

    def _finish(self, episode: Episode, results: list[Episode]) -> None:
        finish_episode(episode, self.store, self.stats, results, self.on_episode)

    def _memory(self) -> dict[str, list[str]]:
        """Reflexion's lessons from stored episodes, for the workers (resumed runs)."""
        if self.store is None or not isinstance(get_agent(self.config.agent), ReflexionAgent):
            return {}
        agent = ReflexionAgent()
        agent.remember(self.store.episodes())
        return agent.memory
