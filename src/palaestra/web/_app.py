"""The trajectory viewer's HTTP server: a JSON API over the run stores plus a static page.

API (all GET, JSON; the page in ``static/`` is its only client):

- ``/api/runs``: the served runs with outcome counts (:class:`RunInfo`).
- ``/api/runs/{run}/episodes?env=&outcome=&split=&suite=&group=&q=&offset=&limit=``:
  one page of a run's episodes, filtered, with the facets the filters offer.
- ``/api/runs/{run}/episode?id=TASK_ID#ATTEMPT``: one ``Episode``, exactly as stored.
- ``/api/runs/{run}/tree?id=TASK_ID#ATTEMPT``: the ``SearchTree`` of a search
  agent's episode (404 for episodes without one).
  (Episode ids hold ``/`` and ``#``, so they travel in the query string.)
- ``/api/task?id=TASK_ID``: the episodes of one task across the served runs.
- ``/api/diff?run_a=&episode_a=&run_b=&episode_b=``: two episodes of the same
  task aligned step by step (``episode_b`` defaults to ``episode_a``).

Errors answer ``{"error", "message"}`` with 404 (unknown run or episode) or
400. Trajectories are untrusted text (model and environment output), so the
page never renders them as HTML, and every response carries a strict
Content-Security-Policy as a second line of defence: no inline or foreign
scripts, no foreign connections. API responses are ``no-store`` so a reload
always shows episodes added by a run still in progress.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from palaestra.trajectory import Episode, SearchTree
from palaestra.web._index import MAX_PAGE, BadRequest, NotFound, RunIndex
from palaestra.web._models import EpisodeDiff, EpisodePage, RunInfo, TaskEpisode

try:
    from fastapi import FastAPI, Query, Request
    from fastapi.middleware.trustedhost import TrustedHostMiddleware
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        'the trajectory viewer needs FastAPI and uvicorn; install them with:\npip install "palaestra[web]"'
    ) from e

STATIC_DIR = Path(__file__).parent / "static"

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def create_viewer_app(
    run_dirs: Sequence[str | Path], *, allowed_hosts: Sequence[str] | None = None
) -> FastAPI:
    """The viewer app for ``run_dirs`` (each a directory holding ``run.sqlite``).

    Raises ``StoreError`` if a directory is not a readable run. ``allowed_hosts``
    restricts the ``Host`` header (against DNS rebinding when served on loopback);
    None accepts any.
    """
    index = RunIndex(run_dirs)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None]:
        yield
        index.close()

    app = FastAPI(
        title="Palaestra trajectory viewer",
        lifespan=lifespan,
        docs_url=None,  # the Swagger page loads scripts from a CDN, which the CSP forbids
        redoc_url=None,
    )
    app.state.index = index
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def _headers(  # pyright: ignore[reportUnusedFunction]
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        else:
            # Revalidate the page's own files, so an upgraded viewer is never half-cached.
            response.headers["Cache-Control"] = "no-cache"
        return response

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        return JSONResponse({"error": "not_found", "message": str(exc)}, status_code=404)

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:  # pyright: ignore[reportUnusedFunction]
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/runs")
    def runs() -> list[RunInfo]:  # pyright: ignore[reportUnusedFunction]
        return index.runs()

    @app.get("/api/runs/{run}/episodes")
    def episodes(  # pyright: ignore[reportUnusedFunction]
        run: str,
        env: str | None = None,
        outcome: str | None = None,
        split: str | None = None,
        suite: str | None = None,
        group: str | None = None,
        q: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> EpisodePage:
        return index.episodes(
            run,
            env=env or None,
            outcome=outcome or None,
            split=split or None,
            suite=suite or None,
            group=group or None,
            q=q or None,
            offset=offset,
            limit=limit,
        )

    @app.get("/api/runs/{run}/episode", response_model=Episode)
    def episode(run: str, id: str) -> Response:  # pyright: ignore[reportUnusedFunction]
        # Serialised by the schema itself; FastAPI would validate it a second time.
        body = index.episode(run, id).model_dump_json()
        return Response(body, media_type="application/json")

    @app.get("/api/runs/{run}/tree", response_model=SearchTree)
    def tree(run: str, id: str) -> Response:  # pyright: ignore[reportUnusedFunction]
        return Response(index.tree(run, id).model_dump_json(), media_type="application/json")

    @app.get("/api/task")
    def task(id: str) -> list[TaskEpisode]:  # pyright: ignore[reportUnusedFunction]
        return index.task_episodes(id)

    @app.get("/api/diff", response_model=EpisodeDiff)
    def diff(  # pyright: ignore[reportUnusedFunction]
        run_a: str, episode_a: str, run_b: str, episode_b: str | None = None
    ) -> Response:
        d = index.diff(run_a, episode_a, run_b, episode_b or episode_a)
        return Response(d.model_dump_json(), media_type="application/json")

    return app
