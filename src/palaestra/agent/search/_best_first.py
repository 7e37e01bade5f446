"""Best-first tree search over environment states (Koh, McAleer, Fried and Salakhutdinov,
"Tree Search for Language Model Agents", 2024).

Each round starts at the state the agent has committed to. Its frontier holds
the unexpanded states of that subtree; the round pops the highest-valued one,
samples ``branching`` actions there (see ``_base.py``), values the resulting
states and pushes them, until a successful terminal state is found, the
round's ``round_nodes`` expansions are spent, or the frontier is empty
(states deeper than ``search_depth`` below the round's root are not
expanded). The agent then commits to the best state found below the root
(highest value; ties: fewer rejected actions, shallower, more samples
agreeing, earlier) and searches again from there.

Deviations from the paper: the value function is configurable (the paper
prompts a multimodal model for a value with self-consistency; ``value="self"``
is that without the self-consistency votes, the default ``progress`` reads the
environment's progress rate); a round commits to its best state's path rather
than stopping the episode when the value clears a threshold; and success is
recognised from the environment (see ``_base.py``). For the stored tree a
node's ``q`` is the best value in its subtree.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator

from palaestra.agent._core import ModelCall
from palaestra.agent.search._base import Node, Search, SearchAgent
from palaestra.model import Completion


def _subtree(root: Node) -> list[Node]:
    out: list[Node] = []
    stack = [root]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(n.children)
    return out


def _rank(n: Node) -> tuple[float, int, int, int, int]:
    # larger is better: value, then valid actions, shallower, more samples, earlier
    return (n.value or 0.0, -int(n.invalid), -n.depth, n.samples, -n.id)


class BestFirstSearchAgent(SearchAgent):
    """``search:best-first``: Koh et al.'s best-first search as an agent."""

    name = "search:best-first"
    algorithm = "best-first"

    def search_round(
        self, s: Search, root: Node
    ) -> Generator[ModelCall, Completion | None, Node | None]:
        frontier: list[tuple[float, int, Node]] = []

        def push(n: Node) -> None:
            if not n.expanded and not n.terminal:
                heapq.heappush(frontier, (-(n.value or 0.0), n.id, n))

        for n in _subtree(root):
            push(n)
        expansions = 0
        while frontier and expansions < self.search.round_nodes and not self.out_of_budget(s):
            _, _, node = heapq.heappop(frontier)
            if node.depth - root.depth >= self.search.search_depth or node.depth >= self.max_steps:
                continue
            children = yield from self.expand(s, node)
            expansions += 1
            for child in children:
                yield from self.evaluate(s, child)
                if child.success:
                    return child
                push(child)
        below = [n for n in _subtree(root) if n is not root]
        if not below:
            return None
        alive = [n for n in below if not n.terminal] or below
        return max(alive, key=_rank)

    def finish_tree(self, s: Search) -> None:
        # q = the best value in the subtree (children come after their parent in s.nodes)
        for n in reversed(s.nodes):
            below = [c.best_below for c in n.children if c.best_below is not None]
            n.best_below = max([n.value or 0.0, *below])
