"""The self-improvement loop: ``palaestra evolve``.

- :class:`EvolveConfig` / :func:`load_evolve_config`: what a run does (YAML + flags);
  :func:`check_evolve_config`: refuse a config a later stage could not run with.
- :func:`evolve`: base SFT, then iterations of curriculum → rollouts → data →
  training → evaluation, with a control arm; resumable stage by stage.
- :mod:`palaestra.evolve._curriculum`: the next iteration's tasks from this one's results.
- :class:`RLArmConfig` (``EvolveConfig.rl``): online RL in the improving arm (the ``rl``
  arm); :func:`control_steps`: the control arm's compute-matched budget.
"""

from palaestra.evolve._config import (
    CurriculumConfig,
    DataMix,
    EvolveConfig,
    RLArmConfig,
    check_evolve_config,
    control_steps,
    load_evolve_config,
)
from palaestra.evolve._curriculum import check_no_leak, next_cells, propose
from palaestra.evolve._loop import EvolveResult, ModelRecord, evolve
from palaestra.evolve._rl_arm import RLStats

__all__ = [
    "CurriculumConfig",
    "DataMix",
    "EvolveConfig",
    "EvolveResult",
    "ModelRecord",
    "RLArmConfig",
    "RLStats",
    "check_evolve_config",
    "check_no_leak",
    "control_steps",
    "evolve",
    "load_evolve_config",
    "next_cells",
    "propose",
]
