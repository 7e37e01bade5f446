"""The live environments of one server: creation, per-env serialisation, timeouts, reaping.

Framework-free (asyncio only), so the policies are in one place and the
FastAPI layer in ``_app.py`` only translates HTTP to these calls. How a call
runs under the request timeout (on the loop with a SIGALRM deadline, or on
the environment's own thread) is in ``_exec.py``. A call that times out
leaves its environment in an unknown state, so the environment is marked
broken: later calls on it fail with a clear error until it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, JsonValue

from palaestra.env._core import EnvError, Environment, Observation, ResetNeeded, Task
from palaestra.env._registry import make, registry, spec
from palaestra.env.server._exec import (
    CallTimeout,
    Isolation,
    Mode,
    SignalTimer,
    Worker,
    signal_mode_possible,
)
from palaestra.env.server._models import (
    CreateEnv,
    EnvCreated,
    EnvInfo,
    ErrorCode,
    MakeTask,
    RegisteredEnv,
    Restored,
    StepResult,
)

log = logging.getLogger("palaestra.env.server")

T = TypeVar("T")

_REAPED_MEMORY = 4096  # how many closed keys we remember, for a precise 404 message
_SNAPSHOT_ID = re.compile(r"0|[1-9][0-9]{0,17}")  # what snapshot() issues: str(n), ASCII

#: Server-side constructor arguments, by environment id (``serve-env --env-kwargs``).
EnvKwargs = Mapping[str, Mapping[str, JsonValue]]


class ApiError(Exception):
    """An error with its HTTP status and wire code; ``_app.py`` turns it into a response."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code: ErrorCode = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(eq=False)
class _Live:
    key: str
    env_id: str
    env: Environment
    worker: Worker | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    snapshots: OrderedDict[str, object] = field(default_factory=OrderedDict[str, object])
    next_snapshot: int = 0
    broken: str | None = None
    closed: bool = False


def _classify(exc: BaseException, op: str, caller_errors: tuple[type[Exception], ...]) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ResetNeeded):
        return ApiError(409, "reset_needed", str(exc))
    if caller_errors and isinstance(exc, caller_errors):
        return ApiError(400, "bad_request", str(exc) or type(exc).__name__)
    if isinstance(exc, EnvError):
        return ApiError(502, "env_error", f"{op}: {exc}")
    log.error("%s raised", op, exc_info=exc)
    return ApiError(500, "env_error", f"{op} raised {type(exc).__name__}: {exc}")


def _with_actions(env: Environment, obs: Observation, include: bool) -> Observation:
    if not include:
        return obs
    return StepResult.model_construct(**dict(obs), available_actions=env.available_actions())


class EnvManager:
    """The table of live environments and the rules for using them."""

    def __init__(
        self,
        *,
        max_envs: int = 64,
        idle_timeout: float = 600.0,
        request_timeout: float = 30.0,
        max_snapshots: int = 1024,
        isolation: Isolation = "auto",
        env_kwargs: EnvKwargs | None = None,
    ) -> None:
        """``env_kwargs``: the operator's constructor arguments per environment id, applied
        to every environment of that id (clients may override only client-settable ones)."""
        if max_envs < 1:
            raise ValueError(f"max_envs must be >= 1, got {max_envs}")
        if idle_timeout <= 0 or request_timeout <= 0:
            raise ValueError("idle_timeout and request_timeout must be > 0 seconds")
        if max_snapshots < 1:
            raise ValueError(f"max_snapshots must be >= 1, got {max_snapshots}")
        self.max_envs = max_envs
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.max_snapshots = max_snapshots
        self.isolation: Isolation = isolation
        self.env_kwargs: dict[str, dict[str, JsonValue]] = {}
        for env_id, kwargs in (env_kwargs or {}).items():
            try:
                spec(env_id)
            except KeyError as e:
                raise ValueError(f"server-side env kwargs: {e.args[0]}") from None
            self.env_kwargs[env_id] = dict(kwargs)
        self._mode: Mode | None = None
        self._timer: SignalTimer | None = None
        self._live: dict[str, _Live] = {}
        self._pending = 0  # creations in flight count against max_envs
        self._gone: OrderedDict[str, str] = OrderedDict()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def live_count(self) -> int:
        return len(self._live)

    # ---- lifecycle --------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """How calls run; resolved from ``isolation`` on first use, on the loop's thread."""
        if self._mode is None:
            mode: Mode
            if self.isolation == "auto":
                mode = "signal" if signal_mode_possible() else "thread"
            elif self.isolation == "signal" and not signal_mode_possible():
                log.warning("isolation='signal' needs Unix and the main thread; using 'thread'")
                mode = "thread"
            else:
                mode = self.isolation
            if mode == "signal":
                self._timer = SignalTimer(self.request_timeout)
                self._timer.install()
            self._mode = mode
        return self._mode

    def start(self) -> None:
        """Start the idle reaper (call from the running loop)."""
        _ = self.mode
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for key in list(self._live):
            await self._close(key, "the server shut down")
        if self._timer is not None:
            self._timer.uninstall()
            self._timer = None
            self._mode = None

    async def _reap_forever(self) -> None:
        interval = min(max(self.idle_timeout / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:  # the reaper must outlive any one bad close
                log.exception("reaping idle environments failed")

    async def reap(self) -> list[str]:
        """Close every environment idle for longer than ``idle_timeout``; return their keys."""
        now = time.monotonic()
        idle = [
            live.key
            for live in self._live.values()
            if not live.lock.locked() and now - live.last_used > self.idle_timeout
        ]
        for key in idle:
            log.info("reaping idle environment %s", key)
            await self._close(key, f"it was idle for more than {self.idle_timeout:g} s and reaped")
        return idle

    # ---- creation and lookup ------------------------------------------------------

    def _retry_after(self) -> int:
        now = time.monotonic()
        soonest = min(
            (v.last_used + self.idle_timeout - now for v in self._live.values()), default=1
        )
        return int(min(max(soonest, 1), 60))

    async def create(self, req: CreateEnv) -> EnvCreated:
        try:
            s = spec(req.env_id)
        except KeyError as e:
            raise ApiError(404, "unknown_env_id", str(e.args[0])) from None
        refused = sorted(set(req.kwargs) - s.client_kwargs)
        if refused:
            allowed = ", ".join(sorted(s.client_kwargs)) or "none"
            raise ApiError(
                403,
                "forbidden",
                f"{req.env_id} does not let clients set {', '.join(map(repr, refused))}: "
                "constructor arguments are server-side settings, chosen by the server's "
                f"operator (palaestra serve-env --env-kwargs '{req.env_id}={{...}}'); "
                f"client-settable here: {allowed}",
            )
        if len(self._live) + self._pending >= self.max_envs:
            wait = self._retry_after()
            raise ApiError(
                503,
                "server_full",
                f"the server already holds its maximum of {self.max_envs} live environments; "
                f"close one (DELETE /envs/{{key}}) or retry in {wait} s "
                f"(environments idle for {self.idle_timeout:g} s are reaped)",
                {"Retry-After": str(wait)},
            )
        kwargs = {**self.env_kwargs.get(req.env_id, {}), **req.kwargs}
        key = secrets.token_hex(8)
        worker = Worker(f"env-{key}") if self.mode == "thread" else None

        def build() -> tuple[Environment, EnvCreated]:
            env = make(
                req.env_id,
                max_episode_steps=req.max_episode_steps,
                perturbations=req.perturbations,
                perturbation_seed=req.perturbation_seed,
                **kwargs,
            )
            return env, EnvCreated(
                env_key=key,
                env_id=req.env_id,
                description=env.description,
                action_help=env.action_help,
                action_verbs=list(env.action_verbs),
            )

        self._pending += 1
        try:
            env, created = await self._call(worker, build)
        except (Exception, CallTimeout) as e:
            if worker is not None:
                worker.stop()
            if isinstance(e, CallTimeout):
                raise ApiError(
                    504,
                    "timeout",
                    f"make({req.env_id!r}) took longer than {self.request_timeout:g} s",
                ) from None
            raise _classify(e, f"make({req.env_id!r})", (ValueError, TypeError, KeyError)) from e
        finally:
            self._pending -= 1
        self._live[key] = _Live(key=key, env_id=req.env_id, env=env, worker=worker)
        return created

    def get(self, key: str) -> _Live:
        live = self._live.get(key)
        if live is None:
            why = self._gone.get(key)
            reason = f"it was closed because {why}" if why else "it was never created"
            raise ApiError(
                404, "env_not_found", f"no live environment {key!r} on this server: {reason}"
            )
        return live

    # ---- running calls ----------------------------------------------------------------

    async def _call(self, worker: Worker | None, fn: Callable[[], T]) -> T:
        if worker is not None:
            return await worker.run(fn, self.request_timeout)
        try:
            return self._timer.run(fn) if self._timer is not None else fn()
        except (Exception, CallTimeout):
            raise
        except BaseException as e:  # sys.exit() in env code must not stop the server
            raise EnvError(f"the environment raised {type(e).__name__}: {e}") from e

    async def run(
        self,
        key: str,
        op: str,
        fn: Callable[[Environment], T],
        caller_errors: tuple[type[Exception], ...] = (),
    ) -> T:
        """Run ``fn(env)`` on env ``key``'s worker, one call at a time, under the timeout."""
        live = self.get(key)
        async with live.lock:
            if live.closed:
                self.get(key)  # raises the 404 with the reason
            if live.broken is not None:
                raise ApiError(
                    502,
                    "env_broken",
                    f"environment {key!r} ({live.env_id}) is unusable: {live.broken}; "
                    "close it (DELETE /envs/{key}) and create a new one",
                )
            live.last_used = time.monotonic()
            try:
                return await self._call(live.worker, lambda: fn(live.env))
            except CallTimeout:
                live.broken = f"{op} timed out after {self.request_timeout:g} s"
                log.warning("environment %s (%s): %s; marked broken", key, live.env_id, live.broken)
                raise ApiError(
                    504,
                    "timeout",
                    f"{op} on {key!r} ({live.env_id}) did not finish within "
                    f"{self.request_timeout:g} s; the environment is now marked broken",
                ) from None
            except Exception as e:
                raise _classify(e, op, caller_errors) from e
            finally:
                live.last_used = time.monotonic()

    async def close(self, key: str) -> None:
        self.get(key)
        await self._close(key, "it was deleted (DELETE /envs/{key})")

    async def _close(self, key: str, reason: str) -> None:
        live = self._live.pop(key, None)
        if live is None:
            return
        self._gone[key] = reason
        while len(self._gone) > _REAPED_MEMORY:
            self._gone.popitem(last=False)
        live.closed = True
        live.snapshots.clear()
        # Wait for a call in progress: it ends or times out (and marks the env broken).
        async with live.lock:
            try:
                if live.broken is None:
                    await self._call(live.worker, live.env.close)
                else:
                    # Its worker may be stuck for good; close from a throwaway thread.
                    threading.Thread(target=_close_quietly, args=(live.env,), daemon=True).start()
            except (Exception, CallTimeout) as e:
                log.warning("closing environment %s (%s) failed: %r", key, live.env_id, e)
            finally:
                if live.worker is not None:
                    live.worker.stop()

    # ---- the environment operations ----------------------------------------------------

    async def registered(self) -> list[RegisteredEnv]:
        def collect() -> list[RegisteredEnv]:
            out: list[RegisteredEnv] = []
            for env_id, s in registry().items():
                try:
                    description = getattr(s.load(), "description", "")
                except Exception as e:  # a family that fails to import is listed, not fatal
                    description = f"(unavailable: {e})"
                out.append(
                    RegisteredEnv(
                        id=env_id,
                        description=str(description),
                        max_episode_steps=s.max_episode_steps,
                        source=s.source,
                        client_kwargs=sorted(s.client_kwargs),
                    )
                )
            return out

        return await asyncio.to_thread(collect)

    async def make_task(self, key: str, req: MakeTask) -> Task:
        return await self.run(
            key,
            "make_task",
            lambda env: env.make_task(req.seed, req.split, req.difficulty, **req.params),
            (ValueError, TypeError, KeyError),
        )

    async def reset(self, key: str, task: Task, include_actions: bool) -> Observation:
        return await self.run(
            key,
            "reset",
            lambda env: _with_actions(env, env.reset(task), include_actions),
            (ValueError, TypeError),
        )

    async def step(self, key: str, action: str, include_actions: bool) -> Observation:
        return await self.run(
            key, "step", lambda env: _with_actions(env, env.step(action), include_actions)
        )

    async def observation(self, key: str) -> Observation:
        def last(env: Environment) -> Observation:
            if env.last_observation is None:
                raise ResetNeeded("no observation before reset(task)")
            return env.last_observation

        return await self.run(key, "last_observation", last)

    async def available_actions(self, key: str) -> list[str]:
        return await self.run(key, "available_actions", lambda env: env.available_actions())

    async def progress(self, key: str) -> float:
        return await self.run(key, "progress", lambda env: env.progress())

    async def expert(self, key: str) -> str:
        return await self.run(key, "expert", lambda env: env.expert())

    async def info(self, key: str) -> EnvInfo:
        live = self.get(key)
        if live.broken is not None:
            # Answerable without touching the (possibly stuck) environment.
            return EnvInfo(
                env_key=key,
                env_id=live.env_id,
                description="",
                action_help="",
                action_verbs=[],
                task=None,
                broken=live.broken,
                idle_seconds=time.monotonic() - live.last_used,
                snapshots=len(live.snapshots),
            )
        idle = time.monotonic() - live.last_used

        def describe(env: Environment) -> EnvInfo:
            return EnvInfo(
                env_key=key,
                env_id=live.env_id,
                description=env.description,
                action_help=env.action_help,
                action_verbs=list(env.action_verbs),
                task=env.task,
                broken=None,
                idle_seconds=idle,
                snapshots=len(live.snapshots),
            )

        return await self.run(key, "info", describe)

    async def snapshot(self, key: str) -> str:
        snap = await self.run(key, "snapshot", lambda env: env.snapshot())
        live = self.get(key)
        sid = str(live.next_snapshot)
        live.next_snapshot += 1
        live.snapshots[sid] = snap
        while len(live.snapshots) > self.max_snapshots:
            live.snapshots.popitem(last=False)
        return sid

    async def restore(self, key: str, snapshot_id: str, include_actions: bool) -> Restored:
        live = self.get(key)
        snap = live.snapshots.get(snapshot_id)
        if snap is None:
            issued = _SNAPSHOT_ID.fullmatch(snapshot_id) and int(snapshot_id) < live.next_snapshot
            if issued:
                raise ApiError(
                    410,
                    "snapshot_evicted",
                    f"snapshot {snapshot_id!r} of {key!r} was evicted: the server keeps the "
                    f"{self.max_snapshots} most recently used snapshots per environment",
                )
            raise ApiError(
                404, "snapshot_not_found", f"no snapshot {snapshot_id!r} of environment {key!r}"
            )
        live.snapshots.move_to_end(snapshot_id)  # least recently *used* goes first

        def restore(env: Environment) -> Restored:
            env.restore(snap)
            obs = env.last_observation
            return Restored(
                task=env.task,
                observation=obs,
                available_actions=env.available_actions() if include_actions and obs else None,
            )

        return await self.run(key, "restore", restore, (ValueError, TypeError))


def _close_quietly(env: Environment) -> None:
    try:
        env.close()
    except Exception as e:
        log.warning("closing a broken environment failed: %r", e)


def dump(model: BaseModel) -> bytes:
    """Serialise a response model (pydantic-core's JSON, no intermediate dict)."""
    return model.model_dump_json().encode()
