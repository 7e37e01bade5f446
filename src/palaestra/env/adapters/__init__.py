"""Adapters from Palaestra environments to other ecosystems' environment APIs.

- :func:`to_gymnasium` — a ``gymnasium.Env`` with text spaces (Gymnasium 1.x
  API, passes ``gymnasium.utils.env_checker.check_env``); needs the ``[gym]`` extra.
- :func:`trl_environment_factory` / :func:`tasks_dataset` — environments and
  datasets for TRL's ``GRPOTrainer(environment_factory=...)`` (TRL 1.16
  protocol: ``reset(**row)``, public methods as tools, ``get_reward()``);
  the dataset needs the ``[train]`` extra.

Names are imported on first use, so importing this package needs no extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from palaestra.env.adapters.gymnasium import GymnasiumEnv, to_gymnasium
    from palaestra.env.adapters.trl import PalaestraTRLEnv, tasks_dataset, trl_environment_factory

__all__ = [
    "GymnasiumEnv",
    "PalaestraTRLEnv",
    "tasks_dataset",
    "to_gymnasium",
    "trl_environment_factory",
]

_LAZY = {
    "GymnasiumEnv": "palaestra.env.adapters.gymnasium",
    "to_gymnasium": "palaestra.env.adapters.gymnasium",
    "PalaestraTRLEnv": "palaestra.env.adapters.trl",
    "tasks_dataset": "palaestra.env.adapters.trl",
    "trl_environment_factory": "palaestra.env.adapters.trl",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
