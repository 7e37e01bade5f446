"""Training data builders: trajectories in, ``datasets.Dataset`` (and a dataset card) out.

- :func:`build_sft`: successful trajectories, loss on the agent's turns (AgentTuning),
  optional hybrid mixing with general chat data.
- :func:`build_refine` / :func:`build_refine_synthetic`: mistakes kept in context
  without loss, teacher corrections with loss (AgentRefine).
- :func:`build_pairs`: DPO pairs, trajectory-level (AgentGym / ETO) and step-level (Agent Q,
  from episodes or from search trees).
- :func:`build_reflect`: revision trajectories spliced from search trees (Agent-R).
- :func:`save`: ``save_to_disk`` plus ``card.json`` and ``README.md``.
"""

from palaestra.data._common import DatasetCard, Source, TokenStats, load_card, load_sources, save
from palaestra.data._general import load_general
from palaestra.data._pairs import build_pairs
from palaestra.data._refine import (
    ERROR_TYPES,
    ErrorType,
    ModelTeacher,
    Teacher,
    build_refine,
    build_refine_synthetic,
)
from palaestra.data._reflect import build_reflect, load_trees
from palaestra.data._sft import build_sft

__all__ = [
    "ERROR_TYPES",
    "DatasetCard",
    "ErrorType",
    "ModelTeacher",
    "Source",
    "Teacher",
    "TokenStats",
    "build_pairs",
    "build_refine",
    "build_refine_synthetic",
    "build_reflect",
    "build_sft",
    "load_card",
    "load_general",
    "load_sources",
    "load_trees",
    "save",
]
