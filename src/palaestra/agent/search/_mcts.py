"""Monte Carlo tree search over environment states, LATS / R-MCTS style (Zhou et al.,
"Language Agent Tree Search Unifies Reasoning, Acting, and Planning in Language
Models", 2024; Yu et al., "Exact: Teaching AI Agents to Explore with Reflective-MCTS
and Exploratory Learning", 2024).

Each round runs ``round_nodes`` iterations from the committed state:

1. **Selection**: descend from the round's root through expanded states by
   UCT, ``Q(child) + c_uct * sqrt(ln N(parent) / N(child))``.
2. **Expansion**: at an unexpanded, non-terminal state within ``search_depth``
   of the root, sample ``branching`` actions (see ``_base.py``).
3. **Evaluation**: each new state gets a value (``progress``, ``self`` — the
   model's 0-10 rating, LATS's LM value — or ``rollout`` — LATS's simulation).
4. **Backpropagation**: each new state's value is added along its path to the
   tree's root (every new state counts one visit, as when all of a LATS
   expansion's children are evaluated). A selected leaf that cannot be
   expanded (terminal, too deep, or whose replies had no valid action) is
   backed up again with its own value.

A successful terminal state ends the round at once and the agent commits to
its whole path; otherwise it commits one step, the root's child with the
highest Q (ties: not a failed end, then more visits) — LATS's choice; the classic most-visited child
followed exploration rather than value when the values were small and flat
(progress rates), on ToyEnv it walked away from the target — and the next
round reuses that subtree. Deviations: values
come from the configured function only (LATS mixes an LM score with a
self-consistency score; R-MCTS adds reflections and multi-agent debate, which
are not here); success is recognised from the environment (see ``_base.py``).
"""

from __future__ import annotations

from collections.abc import Generator

from palaestra.agent._core import ModelCall
from palaestra.agent.search._base import Node, Search, SearchAgent
from palaestra.model import Completion


def _commit_rank(n: Node) -> tuple[float, bool, int, int]:
    # highest Q; then anything over a failed end; then more visits; then earlier
    return (n.q or 0.0, not (n.terminal and not n.success), n.visits, -n.id)


class MCTSAgent(SearchAgent):
    """``search:mcts``: UCT search with LATS-style expansion, values and backups."""

    name = "search:mcts"
    algorithm = "mcts"

    def search_round(
        self, s: Search, root: Node
    ) -> Generator[ModelCall, Completion | None, Node | None]:
        c = self.search.c_uct
        for _ in range(self.search.round_nodes):
            if self.out_of_budget(s):
                break
            node = root
            while node.children and not node.terminal:
                node = max(node.children, key=lambda ch: (self.uct(ch, c), -ch.id))
            too_deep = (
                node.depth - root.depth >= self.search.search_depth or node.depth >= self.max_steps
            )
            if node.terminal or too_deep or node.expanded:
                self.backprop(node, node.value or 0.0)
                continue
            children = yield from self.expand(s, node)
            if not children:
                self.backprop(node, node.value or 0.0)
                continue
            for child in children:
                value = yield from self.evaluate(s, child)
                self.backprop(child, value)
                if child.success:
                    return child
        if not root.children:
            return None
        return max(root.children, key=_commit_rank)
