"""Concurrent rollouts with cross-episode batching, limits, retries and a resumable store.

Besides ``rollout``: what another kind of run (``palaestra.eval``'s) drives the same
code with: :class:`RunSettings` (and ``turns_field``, ``RESUMABLE_SETTINGS`` for a
config that extends it), :func:`build_agent`, :class:`EngineParts` and :func:`open_run`.
"""

from palaestra.rollout._build import EngineParts, build_agent
from palaestra.rollout._config import (
    RESUMABLE_SETTINGS,
    AgentSettings,
    RolloutConfig,
    RunSettings,
    load_config,
    turns_field,
)
from palaestra.rollout._driver import OpenRun, open_run, package_versions
from palaestra.rollout._engine import INFRA_ERRORS, Limits, RolloutEngine, RolloutStats
from palaestra.rollout._run import rollout

__all__ = [
    "INFRA_ERRORS",
    "RESUMABLE_SETTINGS",
    "AgentSettings",
    "EngineParts",
    "Limits",
    "OpenRun",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutStats",
    "RunSettings",
    "build_agent",
    "load_config",
    "open_run",
    "package_versions",
    "rollout",
    "turns_field",
]
