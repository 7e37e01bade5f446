"""The environment contract, registry, wrappers and conformance checker.

See ``palaestra/env/_core.py`` for the exact semantics of every method.
"""

from palaestra.env._baselines import (
    EpisodeResult,
    Policy,
    expert_policy,
    random_policy,
    run_episode,
)
from palaestra.env._builtin import BUILTIN_FAMILIES, BUILTIN_SPECS
from palaestra.env._checker import CheckReport, EnvCheckError, check_env
from palaestra.env._core import (
    DIFFICULTIES,
    SPLITS,
    Difficulty,
    EnvError,
    Environment,
    InvalidKind,
    Observation,
    ResetNeeded,
    Split,
    StateSnapshotMixin,
    Task,
)
from palaestra.env._registry import (
    ENTRY_POINT_GROUP,
    EnvSpec,
    make,
    register,
    registry,
    spec,
    tasks,
)
from palaestra.env._suggest import close_env_ids, unknown_env_message
from palaestra.env._toy import ToyEnv
from palaestra.env._wrappers import (
    ALL_PERTURBATIONS,
    PERTURBATIONS,
    Perturb,
    Perturbation,
    StepLimit,
    Wrapper,
)

__all__ = [
    "ALL_PERTURBATIONS",
    "BUILTIN_FAMILIES",
    "BUILTIN_SPECS",
    "DIFFICULTIES",
    "ENTRY_POINT_GROUP",
    "PERTURBATIONS",
    "SPLITS",
    "CheckReport",
    "Difficulty",
    "EnvCheckError",
    "EnvError",
    "EnvSpec",
    "Environment",
    "EpisodeResult",
    "InvalidKind",
    "Observation",
    "Perturb",
    "Perturbation",
    "Policy",
    "ResetNeeded",
    "Split",
    "StateSnapshotMixin",
    "StepLimit",
    "Task",
    "ToyEnv",
    "Wrapper",
    "check_env",
    "close_env_ids",
    "expert_policy",
    "make",
    "random_policy",
    "register",
    "registry",
    "run_episode",
    "spec",
    "tasks",
    "unknown_env_message",
]
