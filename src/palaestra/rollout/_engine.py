"""The rollout engine: many episodes in flight, their model calls batched together.

AgentGym and most agent codebases step one episode at a time, so the model
sees batch size 1. Here ``concurrency`` worker coroutines each drive one
episode's agent loop (a generator, see ``palaestra.agent``); whenever a loop
needs the model it submits a :class:`~palaestra.agent.ModelCall` to a shared
batcher, which sends everything queued — one prompt per waiting episode —
as one ``agenerate`` call. While the model works (in a thread for local
backends, over HTTP for servers), the event loop keeps stepping the other
episodes' environments: continuous, cross-episode batching.

Outcomes: ``success``/``failure`` from the environment; ``limit`` when a
budget runs out (steps — enforced by the agent —, tokens, wall time, or the
environment's truncation); ``error`` for infrastructure failures
(``EnvError``, ``ModelError``, ``OSError``, timeouts), retried up to
``max_retries`` times with a fresh environment and never scored as reward 0.
Any other exception is a bug and propagates. Each finished episode is
written to the run store in its own transaction; a restarted run skips what
the store already holds (idempotent by ``task_id#attempt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from palaestra.agent import Agent, AgentLoop, EpisodeEnd, ModelCall
from palaestra.env import EnvError, Environment, Task
from palaestra.model import ChatMessage, Completion, Model, ModelError
from palaestra.trajectory import Episode, ErrorInfo, RunStore, Step

_T = TypeVar("_T")

#: Exceptions that mean "infrastructure failed", recorded as the ``error`` outcome.
INFRA_ERRORS: tuple[type[BaseException], ...] = (EnvError, ModelError, OSError, TimeoutError)


@dataclass
class Limits:
    """Per-episode budgets beyond the agent's step limit. ``None`` means unlimited."""

    max_tokens: int | None = None
    max_seconds: float | None = None


@dataclass
class RolloutStats:
    """Live counters, shown in the progress bar and returned at the end."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict[str, int])
    retries: int = 0
    model_calls: int = 0
    batches: int = 0
    completion_tokens: int = 0
    env_steps: int = 0
    seconds: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.model_calls / self.batches if self.batches else 0.0


def finish_episode(
    episode: Episode,
    store: RunStore | None,
    stats: RolloutStats,
    results: list[Episode],
    on_episode: Callable[[Episode, RolloutStats], None] | None,
) -> None:
    """Store a finished episode (one transaction), count it, and report it."""
    if store is not None:
        store.add(episode)
    results.append(episode)
    stats.done += 1
    stats.outcomes[episode.outcome] = stats.outcomes.get(episode.outcome, 0) + 1
    stats.env_steps += sum(1 for st in episode.steps if st.format_error is None)
    if on_episode is not None:
        on_episode(episode, stats)


class _Batcher:
    """Collects the model calls of all waiting episodes and serves them in batches."""

    def __init__(self, model: Model, max_batch: int, stats: RolloutStats) -> None:
        self.model = model
        self.max_batch = max_batch
        self.stats = stats
        self.queue: list[tuple[ModelCall, asyncio.Future[Completion]]] = []
        self.wakeup = asyncio.Event()

    async def submit(self, call: ModelCall) -> Completion:
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.queue.append((call, fut))
        self.wakeup.set()
        return await fut

    async def serve(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            # One more turn of the loop lets episodes that were just handed a
            # completion step their environments and join this batch.
            await asyncio.sleep(0)
            while self.queue:
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                await self._run(batch)

    async def _run(self, batch: list[tuple[ModelCall, asyncio.Future[Completion]]]) -> None:
        # Calls with different decoding settings (acting vs reflecting) go in separate batches.
        groups: dict[str, list[tuple[ModelCall, asyncio.Future[Completion]]]] = {}
        for item in batch:
            key = item[0].config.model_dump_json() if item[0].config else ""
            groups.setdefault(key, []).append(item)
        for items in groups.values():
            self.stats.batches += 1
            self.stats.model_calls += len(items)
            try:
                outs = await self.model.agenerate(
                    [c.messages for c, _ in items], items[0][0].config
                )
            except Exception as e:  # hand the failure to every waiting episode
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), out in zip(items, outs, strict=True):
                self.stats.completion_tokens += out.completion_tokens
                if not fut.done():
                    fut.set_result(out)


def _advance(loop: AgentLoop, reply: Completion | None) -> ModelCall | Step | EpisodeEnd:
    # StopIteration must not cross a coroutine boundary (it becomes RuntimeError).
    try:
        return loop.send(reply)
    except StopIteration as stop:
        return stop.value


class _LimitReached(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class RolloutEngine:
    """Run ``agent`` with ``model`` on many tasks concurrently. See the module docstring."""

    def __init__(
        self,
        agent: Agent,
        env_factory: Callable[[], Environment],
        model: Model | None = None,
        *,
        run_id: str = "run",
        concurrency: int = 8,
        max_batch: int | None = None,
        limits: Limits | None = None,
        max_retries: int = 2,
        store: RunStore | None = None,
        env_in_thread: bool = False,
        on_episode: Callable[[Episode, RolloutStats], None] | None = None,
        episode_metadata: Callable[[Task, int], Mapping[str, Any]] | None = None,
    ) -> None:
        if agent.needs_model and model is None:
            raise ValueError(f"agent {agent.name!r} needs a model")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.agent = agent
        self.env_factory = env_factory
        self.model = model
        self.run_id = run_id
        self.concurrency = concurrency
        self.max_batch = max_batch or concurrency
        self.limits = limits or Limits()
        self.max_retries = max_retries
        self.store = store
        self.env_in_thread = env_in_thread
        self.on_episode = on_episode
        #: Extra ``Episode.metadata`` per (task, attempt), merged over the agent's
        #: (the evaluation harness records suite and group here, on every outcome).
        self.episode_metadata = episode_metadata
        self.stats = RolloutStats()

    # ---- public API -------------------------------------------------------------------

    def run(self, tasks: Sequence[Task], attempts: int = 1) -> list[Episode]:
        """Run every (task, attempt) not already in the store; returns the new episodes."""
        return asyncio.run(self.arun(tasks, attempts))

    async def arun(self, tasks: Sequence[Task], attempts: int = 1) -> list[Episode]:
        done = self.store.done() if self.store is not None else set[str]()
        units: list[list[tuple[Task, int]]] = []
        for task in tasks:
            todo = [(task, a) for a in range(attempts) if f"{task.task_id}#{a}" not in done]
            self.stats.skipped += attempts - len(todo)
            if not todo:
                continue
            # In-order agents (Reflexion) run one task's attempts back to back in one worker.
            units.extend([todo] if self.agent.attempts_in_order else [[u] for u in todo])
        self.stats.total = sum(len(u) for u in units)
        queue: asyncio.Queue[list[tuple[Task, int]]] = asyncio.Queue()
        for u in units:
            queue.put_nowait(u)
        results: list[Episode] = []
        batcher = _Batcher(self.model, self.max_batch, self.stats) if self.model else None
        server = asyncio.create_task(batcher.serve()) if batcher else None
        t0 = time.perf_counter()
        try:
            workers = [
                asyncio.create_task(self._worker(queue, batcher, results))
                for _ in range(min(self.concurrency, len(units)))
            ]
            await asyncio.gather(*workers)
        finally:
            if server is not None:
                server.cancel()
            self.stats.seconds = time.perf_counter() - t0
        return results

    # ---- internals -------------------------------------------------------------------

    async def _worker(
        self,
        queue: asyncio.Queue[list[tuple[Task, int]]],
        batcher: _Batcher | None,
        results: list[Episode],
    ) -> None:
        env: Environment | None = None
        try:
            while not queue.empty():
                unit = queue.get_nowait()
                for task, attempt in unit:
                    retries = 0
                    while True:
                        if env is None:
                            env = await self._call(self.env_factory)
                        episode = await self._episode(env, task, attempt, batcher)
                        if episode.outcome == "error":
                            self._discard(env)  # a failed environment is not reused
                            env = None
                        if episode.outcome != "error" or retries == self.max_retries:
                            break
                        retries += 1
                        self.stats.retries += 1
                    self._finish(episode, results)
        finally:
            self._discard(env)

    def _discard(self, env: Environment | None) -> None:
        if env is not None:
            with contextlib.suppress(Exception):  # closing a broken environment may fail too
                env.close()

    async def _call(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.to_thread(fn) if self.env_in_thread else fn()

    def _finish(self, episode: Episode, results: list[Episode]) -> None:
        finish_episode(episode, self.store, self.stats, results, self.on_episode)

    async def _episode(
        self, env: Environment, task: Task, attempt: int, batcher: _Batcher | None
    ) -> Episode:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        steps: list[Step] = []
        tokens_in = tokens_out = 0
        last_call: ModelCall | None = None
        last_reply: Completion | None = None
        end: EpisodeEnd | None = None
        error: ErrorInfo | None = None
        loop = self.agent.run(env, task, attempt)
        reply: Completion | None = None
        try:
            while True:
                event = await self._call(lambda r=reply: _advance(loop, r))
                if isinstance(event, EpisodeEnd):
                    end = event
                    break
                reply = None
                if isinstance(event, Step):
                    steps.append(event)
                    continue
                self._check_limits(tokens_in + tokens_out, time.perf_counter() - t0)
                if batcher is None:
                    raise ValueError(f"agent {self.agent.name!r} asked for a model but none is set")
                last_call = event
                remaining = self._remaining(t0)
                reply = await (
                    asyncio.wait_for(batcher.submit(event), remaining)
                    if remaining is not None
                    else batcher.submit(event)
                )
                last_reply = reply
                tokens_in += reply.prompt_tokens
                tokens_out += reply.completion_tokens
        except _LimitReached as lim:
            loop.close()
            end = EpisodeEnd("limit", self._conversation(last_call, last_reply), lim.reason)
        except TimeoutError:
            loop.close()
            end = EpisodeEnd("limit", self._conversation(last_call, last_reply), "wall_time")
        except INFRA_ERRORS as e:
            loop.close()
            source = "model" if isinstance(e, ModelError) else "env"
            error = ErrorInfo(
                type=type(e).__name__,
                message=str(e),
                traceback=traceback.format_exc(),
                source=source,
            )
            end = EpisodeEnd("error", self._conversation(last_call, last_reply))
        assert end is not None
        score = sum(s.reward for s in steps)
        return Episode(
            run_id=self.run_id,
            task=task,
            attempt=attempt,
            agent=self.agent.name,
            model_id=self.model.id if self.model else self.agent.name,
            outcome=end.outcome,
            score=0.0 if end.outcome == "error" else score,
            progress=steps[-1].progress if steps else 0.0,
            steps=steps,
            messages=end.messages,
            limit_reason=end.limit_reason,
            error=error,
            prompt_tokens=tokens_in,
            completion_tokens=tokens_out,
            started_at=started,
            finished_at=datetime.now(UTC),
            wall_seconds=time.perf_counter() - t0,
            metadata={
                **end.metadata,
                **(self.episode_metadata(task, attempt) if self.episode_metadata else {}),
            },
        )

    def _check_limits(self, tokens: int, seconds: float) -> None:
        lim = self.limits
        if lim.max_tokens is not None and tokens >= lim.max_tokens:
            raise _LimitReached("tokens")
        if lim.max_seconds is not None and seconds >= lim.max_seconds:
            raise _LimitReached("wall_time")

    def _remaining(self, t0: float) -> float | None:
        if self.limits.max_seconds is None:
            return None
        return max(0.0, self.limits.max_seconds - (time.perf_counter() - t0))

    @staticmethod
    def _conversation(call: ModelCall | None, reply: Completion | None) -> list[ChatMessage]:
        if call is None:
            return []
        tail = [ChatMessage(role="assistant", content=reply.text)] if reply else []
        return [*call.messages, *tail]
