"""Training data builders: trajectories in, ``datasets.Dataset`` (and a dataset card) out.

- :func:`build_sft`: successful trajectories, loss on the agent's turns (AgentTuning),
  optional hybrid mixing with general chat data.
- :func:`build_refine` / :func:`build_refine_synthetic`: mistakes kept in context
  without loss, teacher corrections with loss (AgentRefine).
- :func:`build_pairs`: DPO pairs, trajectory-level (AgentGym / ETO) and step-level (Agent Q,
  from episodes or from search trees).
- :func:`build_reflect`: revision trajectories spliced from search trees (Agent-R).
- :func:`save`: ``save_to_disk`` plus ``card.json`` and ``README.md``.
- :func:`tiny_corpus`, :func:`pretrain_corpus`, :func:`synthetic_doc`: the ``tiny``
  model's tokenizer and pretraining text, generated from the built-in environments and
  agent prompts; :func:`tiny_path` and :func:`pretrain_tiny` build the model from them
  (``[train]`` extra; imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palaestra.data._common import DatasetCard, Source, TokenStats, load_card, load_sources, save
from palaestra.data._corpus import pretrain_corpus, pretrain_documents, synthetic_doc, tiny_corpus
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

if TYPE_CHECKING:
    from palaestra.data._tiny import pretrain_tiny, tiny_model, tiny_path

_LAZY = ("pretrain_tiny", "tiny_model", "tiny_path")  # need torch: imported on first use


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from palaestra.data import _tiny

        return getattr(_tiny, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "pretrain_corpus",
    "pretrain_documents",
    "pretrain_tiny",
    "save",
    "synthetic_doc",
    "tiny_corpus",
    "tiny_model",
    "tiny_path",
]
