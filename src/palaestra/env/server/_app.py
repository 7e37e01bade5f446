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
  environment gives an error response (502/504/500 with
  ``{"error", "message"}``) that the client raises as ``EnvError``;
- operational bounds: per-request timeout (the env is then marked broken),
  idle environments reaped, a cap on live environments (503 + Retry-After),
  optional bearer token, one request at a time per environment.

Speed: the per-step requests, ``POST /envs/{key}/step`` and ``/reset``, are
answered by a small ASGI middleware that skips FastAPI's routing and
dependency resolution (a third of the server's CPU per request on the 2-core
reference machine); it calls the same :class:`EnvManager` methods, and
anything it does not handle itself (a bad token, a malformed body) falls
through to the FastAPI routes, so both paths answer identically. The routes
stay the documented ones in ``/openapi.json``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from pydantic import ValidationError

from palaestra.env._core import Observation, Task
from palaestra.env.server._exec import Isolation
from palaestra.env.server._manager import ApiError, EnvManager, dump
from palaestra.env.server._models import (
    Actions,
    Closed,
    CreateEnv,
    EnvCreated,
    EnvInfo,
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
    from fastapi.responses import Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "the environment server needs FastAPI and uvicorn; install them with:\n"
        'pip install "palaestra[web]"'
    ) from e

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = "application/json"
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 410, 500, 502, 503, 504)
}


# Module level, not inside create_app: FastAPI resolves these postponed
# annotations in the module's globals.
_BEARER = HTTPBearer(auto_error=False, description="The server's --token.")
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, media_type=_JSON, headers=headers)


def _error_body(e: ApiError) -> bytes:
    return dump(ErrorResponse(error=e.code, message=e.message))


def _token_ok(expected: bytes, header: bytes | None) -> bool:
    if header is None or header[:7].lower() != b"bearer ":
        return False
    return hmac.compare_digest(header[7:].strip(), expected)


def create_app(
    token: str | None = None,
    max_envs: int = 64,
    idle_timeout: float = 600,
    request_timeout: float = 30,
    *,
    max_snapshots: int = 1024,
    isolation: Isolation = "auto",
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
    """
    manager = EnvManager(
        max_envs=max_envs,
        idle_timeout=idle_timeout,
        request_timeout=request_timeout,
        max_snapshots=max_snapshots,
        isolation=isolation,
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
    )
    app.state.manager = manager

    dependencies: list[Any] = []
    expected = token.encode() if token else None
    if expected is not None:

        async def check_token(credentials: _Credentials) -> None:
            given = f"Bearer {credentials.credentials}".encode() if credentials else None
            if not _token_ok(expected, given):
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
        return _json(_error_body(e), e.status, e.headers)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, e: Exception) -> Response:
        err = ApiError(500, "internal", f"server error: {type(e).__name__}: {e}")
        return _json(_error_body(err), 500)

    @app.get("/health", response_model=Health, tags=["server"])
    async def health() -> Response:
        """Liveness; open even when a token is required."""
        body = Health(live_envs=manager.live_count, max_envs=max_envs, auth=expected is not None)
        return _json(dump(body))

    r = APIRouter(dependencies=dependencies, responses=_ERRORS)

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
    app.add_middleware(_FastPath, manager=manager, token=expected)
    return app


def _fast_step(manager: EnvManager, key: str, body: bytes) -> Awaitable[Observation]:
    req = Step.model_validate_json(body)  # parse first: a ValidationError here means 422
    return manager.step(key, req.action, req.include_actions)


def _fast_reset(manager: EnvManager, key: str, body: bytes) -> Awaitable[Observation]:
    req = Reset.model_validate_json(body)
    return manager.reset(key, req.task, req.include_actions)


#: The per-step requests of an episode: the ones worth a path around FastAPI.
_FAST_ROUTES = {"step": _fast_step, "reset": _fast_reset}


class _FastPath:
    """Answers ``POST /envs/{key}/step`` and ``/reset`` without FastAPI's routing.

    See the module docstring. Whatever it does not handle itself (another
    path, a bad token, a malformed body) goes to the FastAPI app unchanged.
    """

    def __init__(self, app: ASGIApp, manager: EnvManager, token: bytes | None) -> None:
        self.app = app
        self.manager = manager
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.startswith("/envs/"):
            return await self.app(scope, receive, send)
        key, _, op = path[6:].partition("/")
        route = _FAST_ROUTES.get(op)
        if route is None or not key or (self.token is not None and not self._authorised(scope)):
            return await self.app(scope, receive, send)  # the routes answer 404 / 401
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            call = route(self.manager, key, body)
        except ValidationError:
            return await self.app(scope, _replay(body), send)  # the route answers 422
        status, headers = 200, [(b"content-type", b"application/json")]
        try:
            out = dump(await call)
        except ApiError as e:
            status, out = e.status, _error_body(e)
            headers += [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
        headers.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    def _authorised(self, scope: Scope) -> bool:
        assert self.token is not None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        return _token_ok(self.token, header)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
