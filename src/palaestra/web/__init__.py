"""The trajectory viewer: a local web page over run directories (``palaestra view``).

``create_viewer_app(run_dirs)`` builds the FastAPI app (JSON API in
``_app.py``, the page in ``static/``: plain JavaScript, no build step, no
external assets). It needs the ``[web]`` extra and is imported on first use,
so ``import palaestra.web`` works without FastAPI. ``bind(host, port)`` opens
the listening socket and ``serve(run_dirs, sock)`` runs the viewer on it
(uvicorn, also from the ``[web]`` extra, imported when it starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palaestra.web._serve import bind, serve

if TYPE_CHECKING:
    from palaestra.web._app import create_viewer_app


def __getattr__(name: str) -> Any:
    if name == "create_viewer_app":
        from palaestra.web._app import create_viewer_app

        return create_viewer_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "bind",
    "create_viewer_app",
    "serve",
]
