"""Adapters to environments other people built (TextWorld, ScienceWorld, BabyAI, MiniWoB++, ...).

Each adapter is a subpackage whose ``__init__`` only registers ids (cheap, no
third-party imports); the environment class lives in a submodule imported
when the id is made, so an adapter whose extra is not installed still lists
and fails on ``make()`` with the ``pip install "palaestra[...]"`` to run.
"""

from __future__ import annotations

import importlib
import logging
import warnings

log = logging.getLogger("palaestra.env")

#: Adapter subpackages, each with a ``register_envs()`` function.
ADAPTERS = ("textworld", "twx", "scienceworld", "babyai", "textarena", "miniwob", "agentgym")


def register_external() -> None:
    for name in ADAPTERS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # adapter not shipped in this build
            warnings.warn(f"environment adapter {name!r} failed to load: {e}", stacklevel=2)
            continue
        try:
            module.register_envs()
        except Exception as e:  # one broken adapter must not take the registry down
            warnings.warn(
                f"environment adapter {name!r} failed to register: {type(e).__name__}: {e}",
                stacklevel=2,
            )
