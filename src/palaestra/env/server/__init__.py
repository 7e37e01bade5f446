"""Environments over HTTP: the server (``create_app``, ``palaestra serve-env``) and its client.

Follows AgentGym's environment servers (Xi et al., 2024); see ``_app.py`` for
the resources and what we add. ``RemoteEnvironment`` needs only the core
install; ``create_app`` and ``serve`` (run it with uvicorn) need the ``[web]``
extra (FastAPI, uvicorn) and are imported on first use, so ``import
palaestra.env`` never needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palaestra.env.server._client import TOKEN_ENV_VAR, RemoteEnvironment, RemoteSnapshot

if TYPE_CHECKING:
    from palaestra.env.server._app import create_app
    from palaestra.env.server._serve import serve


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from palaestra.env.server._app import create_app

        return create_app
    if name == "serve":
        from palaestra.env.server._serve import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TOKEN_ENV_VAR",
    "RemoteEnvironment",
    "RemoteSnapshot",
    "create_app",
    "serve",
]
