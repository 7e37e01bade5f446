"""``EnvSpec``: what ``make(id)`` builds — an id, an entry point, a step limit, fixed arguments.

A plain record with no registry behind it, so the table of built-in
environments (``_builtin.py``) and the registry (``_registry.py``) both use it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palaestra._config import load_entry_point
from palaestra.env._core import Environment

EnvFactory = Callable[..., Environment]


@dataclass(frozen=True)
class EnvSpec:
    """What ``make(id)`` builds."""

    id: str
    entry_point: str | EnvFactory
    max_episode_steps: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    #: Where the registration came from (``"palaestra"`` or an entry point's package).
    source: str = "palaestra"
    #: Constructor keyword arguments a remote client may set (``POST /envs`` of
    #: ``palaestra serve-env``); the server refuses every other one. List only
    #: arguments that change nothing on the server host — a generator knob, never a
    #: sandbox, a URL, a path, a timeout or a resource limit (those are the operator's:
    #: ``serve-env --env-kwargs``).
    client_kwargs: frozenset[str] = frozenset()

    @property
    def family(self) -> str:
        return self.id.rsplit("-v", 1)[0]

    def load(self) -> EnvFactory:
        if callable(self.entry_point):
            return self.entry_point
        return load_entry_point(self.entry_point, f"environment {self.id!r}")
