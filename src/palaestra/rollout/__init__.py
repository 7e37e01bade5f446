"""Concurrent rollouts with cross-episode batching, limits, retries and a resumable store."""

from palaestra.rollout._config import RolloutConfig, load_config
from palaestra.rollout._engine import INFRA_ERRORS, Limits, RolloutEngine, RolloutStats
from palaestra.rollout._run import rollout

__all__ = [
    "INFRA_ERRORS",
    "Limits",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutStats",
    "load_config",
    "rollout",
]
