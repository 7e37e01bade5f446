"""Inference-time tree search agents: ``search:best-first`` (Koh et al., 2024) and
``search:mcts`` (LATS / R-MCTS style). Both are ReAct policies whose steps are chosen
by searching over environment states with ``snapshot()/restore()``; each episode's
search tree is stored with the run (``RunStore.tree``). See ``docs/search.md``.
"""

from palaestra.agent.search._base import (
    VALUE_PROMPT,
    SearchAgent,
    SearchConfig,
    ValueKind,
    parse_score,
)
from palaestra.agent.search._best_first import BestFirstSearchAgent
from palaestra.agent.search._mcts import MCTSAgent

__all__ = [
    "VALUE_PROMPT",
    "BestFirstSearchAgent",
    "MCTSAgent",
    "SearchAgent",
    "SearchConfig",
    "ValueKind",
    "parse_score",
]
