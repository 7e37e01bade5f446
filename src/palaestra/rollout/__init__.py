"""Concurrent rollouts with cross-episode batching, limits, retries and a resumable store."""

from palaestra.rollout._build import EngineParts
from palaestra.rollout._config import AgentSettings, RolloutConfig, RunSettings, load_config
from palaestra.rollout._driver import OpenRun, open_run
from palaestra.rollout._engine import INFRA_ERRORS, Limits, RolloutEngine, RolloutStats
from palaestra.rollout._run import rollout

__all__ = [
    "INFRA_ERRORS",
    "AgentSettings",
    "EngineParts",
    "Limits",
    "OpenRun",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutStats",
    "RunSettings",
    "load_config",
    "open_run",
    "rollout",
]
