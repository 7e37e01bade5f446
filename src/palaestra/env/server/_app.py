"""The HTTP environment server: environments as REST resources (FastAPI).

Follows AgentGym (Xi et al., 2024, "AgentGym: Evolving Large Language
Model-based Agents across Diverse Environments"), whose environments run as
HTTP services that create an environment instance, reset it to a task, step
it with a text action and report its observation. We keep that shape and add
what AgentGym leaves to the caller:

- one resource per live environment (``/envs/{key}``) exposing the *whole*
  contract of ``palaestra.env`` (tasks, progress, expert, snapshots), so
  :class:`RemoteEnvironment` is a drop-in :class:`Environment` that passes
  ``check_env``;
- failures are typed, never a reward of 0: a dead, hung or crashing
  environment gives an error response (502/504/500) that the client raises
  as ``EnvError``;
- one error shape, ``{"error": code, "detail": text}`` (``ErrorResponse``),
  on every route and status, 400/404/405/413/422 included, as
  ``/openapi.json`` says; no error costs the client its keep-alive connection;
- operational bounds: per-request timeout (the env is then marked broken),
  idle environments reaped, a cap on live environments (503 + Retry-After),
  a cap on request bodies (413), optional bearer token, one request at a
  time per environment.

Trust: clients choose among registered environments, tasks and actions,
never what the server host does. ``POST /envs`` refuses constructor
arguments the environment's spec does not list as client-settable
(:attr:`EnvSpec.client_kwargs`) with 403; sandboxes, URLs, paths and
timeouts are the operator's (``env_kwargs``, ``serve-env --env-kwargs``).

What every request passes first (body cap, JSON check, the fast path for
``step``/``reset``, the last-resort 500) is in ``_front.py``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from palaestra.env._core import Observation, Task
from palaestra.env.server._exec import Isolation
from palaestra.env.server._front import Front, error_body, token_ok
from palaestra.env.server._manager import ApiError, EnvKwargs, EnvManager, dump
from palaestra.env.server._models import (
    Actions,
    Closed,
    CreateEnv,
    EnvCreated,
    EnvInfo,
    ErrorCode,
    ErrorResponse,
    ExpertAction,
    Health,
    MakeTask,
    Progress,
    RegisteredEnv,
    Reset,
    Restore,
    Restored,
    SnapshotTaken,
    Step,
    StepResult,
)

try:
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "the environment server needs FastAPI and uvicorn; install them with:\n"
        'pip install "palaestra[web]"'
    ) from e

_JSON = "application/json"
#: Documented on every operation: any of them can answer these (400 and 413 from
#: ``_front.py``, 405 for another method, 500 for a server bug ...).
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse}
    for code in (400, 401, 403, 404, 405, 409, 410, 413, 422, 500, 502, 503, 504)
}
_HTTP_CODES: dict[int, ErrorCode] = {404: "not_found", 405: "method_not_allowed"}

#: The default cap on request bodies (``serve-env --max-body-bytes``).
MAX_BODY_BYTES = 1 << 20


# Module level, not inside create_app: FastAPI resolves these postponed
# annotations in the module's globals.
_BEARER = HTTPBearer(auto_error=False, description="The server's --token.")
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, media_type=_JSON, headers=headers)


def _validation_detail(e: RequestValidationError) -> str:
    parts: list[str] = []
    for err in e.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if len(loc) > 1 and loc[0] == "body":
            loc = loc[1:]
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    token: str | None = None,
    max_envs: int = 64,
    idle_timeout: float = 600,
    request_timeout: float = 30,
    *,
    max_snapshots: int = 1024,
    isolation: Isolation = "auto",
    env_kwargs: EnvKwargs | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Build the environment server app.

    ``token``: if set, every endpoint but ``/health`` and the docs needs
    ``Authorization: Bearer <token>``. ``max_envs``: live environments at once
    (one more gets 503). ``idle_timeout``: seconds without a request before an
    environment is closed. ``request_timeout``: seconds one environment call
    may take before the request fails with 504 and the environment is marked
    broken. ``max_snapshots``: snapshots kept per environment (least recently
    used dropped first). ``isolation``: how calls run under the timeout —
    ``"signal"`` (on the event loop, SIGALRM at the deadline; Unix, main
    thread), ``"thread"`` (a worker thread per environment), ``"none"`` (no
    timeout), or ``"auto"``: signal where possible, else thread (see ``_exec.py``).
    ``env_kwargs``: the operator's constructor arguments per environment id (a
    sandbox, a URL, a path ...); clients may set only an environment's
    ``client_kwargs``. ``max_body_bytes``: longer request bodies get 413.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    manager = EnvManager(
        max_envs=max_envs,
        idle_timeout=idle_timeout,
        request_timeout=request_timeout,
        max_snapshots=max_snapshots,
        isolation=isolation,
        env_kwargs=env_kwargs,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None]:
        manager.start()
        yield
        await manager.shutdown()

    app = FastAPI(
        title="Palaestra environment server",
        summary="Palaestra environments over HTTP (AgentGym-style).",
        version="1",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.state.manager = manager

    dependencies: list[Any] = []
    expected = token.encode() if token else None
    if expected is not None:

        async def check_token(credentials: _Credentials) -> None:
            given = f"Bearer {credentials.credentials}".encode() if credentials else None
            if not token_ok(expected, given):
                raise ApiError(
                    401,
                    "unauthorized",
                    "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                    "(RemoteEnvironment(token=...) or the PALAESTRA_ENV_TOKEN variable)",
                    {"WWW-Authenticate": "Bearer"},
                )

        dependencies.append(Depends(check_token))

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: Exception) -> Response:
        assert isinstance(e, ApiError)
        return _json(error_body(e), e.status, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, e: Exception) -> Response:
        assert isinstance(e, RequestValidationError)
        err = ApiError(422, "invalid_request", _validation_detail(e))
        return _json(error_body(err), 422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: Exception) -> Response:
        assert isinstance(e, HTTPException)
        code = _HTTP_CODES.get(e.status_code, "bad_request" if e.status_code < 500 else "internal")
        headers = dict(e.headers) if e.headers else None  # a 405 carries Allow
        err = ApiError(e.status_code, code, str(e.detail))
        return _json(error_body(err), e.status_code, headers)

    # A bug anywhere else becomes a 500 in Front (_front.py), which keeps the connection.

    @app.get("/health", response_model=Health, tags=["server"])
    async def health() -> Response:
        """Liveness; open even when a token is required."""
        body = Health(live_envs=manager.live_count, max_envs=max_envs, auth=expected is not None)
        return _json(dump(body))

    r = APIRouter(dependencies=dependencies)

    @r.get("/envs", response_model=list[RegisteredEnv], tags=["registry"])
    async def list_envs() -> list[RegisteredEnv]:
        """The registered environment ids, with descriptions."""
        return await manager.registered()

    @r.post("/envs", response_model=EnvCreated, tags=["envs"])
    async def create_env(req: CreateEnv) -> Response:
        """Build an environment with ``palaestra.env.make``; returns its key."""
        return _json(dump(await manager.create(req)))

    @r.post("/envs/{key}/tasks", response_model=Task, tags=["envs"])
    async def make_task(key: str, req: MakeTask) -> Response:
        """``make_task(seed, split, difficulty, **params)``."""
        return _json(dump(await manager.make_task(key, req)))

    @r.post("/envs/{key}/reset", response_model=StepResult, tags=["envs"])
    async def reset(key: str, req: Reset) -> Response:
        """Start an episode of ``task``; returns the first observation."""
        return _json(dump(await manager.reset(key, req.task, req.include_actions)))

    @r.post("/envs/{key}/step", response_model=StepResult, tags=["envs"])
    async def step(key: str, req: Step) -> Response:
        """Apply one action; returns the observation (409 if the episode is over)."""
        return _json(dump(await manager.step(key, req.action, req.include_actions)))

    @r.get("/envs/{key}/observation", response_model=Observation, tags=["envs"])
    async def observation(key: str) -> Response:
        """The observation of the latest reset or step."""
        return _json(dump(await manager.observation(key)))

    @r.get("/envs/{key}/available_actions", response_model=Actions, tags=["envs"])
    async def available_actions(key: str) -> Response:
        return _json(dump(Actions(available_actions=await manager.available_actions(key))))

    @r.get("/envs/{key}/progress", response_model=Progress, tags=["envs"])
    async def progress(key: str) -> Response:
        return _json(dump(Progress(progress=await manager.progress(key))))

    @r.get("/envs/{key}/expert", response_model=ExpertAction, tags=["envs"])
    async def expert(key: str) -> Response:
        """The oracle's next action from the current state."""
        return _json(dump(ExpertAction(action=await manager.expert(key))))

    @r.get("/envs/{key}/info", response_model=EnvInfo, tags=["envs"])
    async def info(key: str) -> Response:
        """Id, description, action grammar and current task."""
        return _json(dump(await manager.info(key)))

    @r.post("/envs/{key}/snapshot", response_model=SnapshotTaken, tags=["envs"])
    async def snapshot(key: str) -> Response:
        """Keep the current state on the server; returns its id (freed on close)."""
        return _json(dump(SnapshotTaken(snapshot_id=await manager.snapshot(key))))

    @r.post("/envs/{key}/restore", response_model=Restored, tags=["envs"])
    async def restore(key: str, req: Restore) -> Response:
        """Return to a snapshot of this environment."""
        return _json(dump(await manager.restore(key, req.snapshot_id, req.include_actions)))

    @r.delete("/envs/{key}", response_model=Closed, tags=["envs"])
    async def close(key: str) -> Response:
        """Close the environment and free its snapshots."""
        await manager.close(key)
        return _json(dump(Closed()))

    app.include_router(r)
    app.add_middleware(Front, manager=manager, token=expected, max_body_bytes=max_body_bytes)
    return app
