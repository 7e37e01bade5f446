"""Per-game knowledge for the TextArena adapter: valid moves, our solvers, progress, success.

TextArena's single-player games ship no solvers; the experts here are ours,
written from the games' rules and reading only what the player has been told
(except Sudoku, whose expert copies TextArena's stored solution):

- Tower of Hanoi: breadth-first search over tower states to the goal, so it
  is optimal from any position, not only from the start;
- Guess the Number: binary search on the interval the hints so far allow;
- Frozen Lake: breadth-first search around the holes (the map is shown);
- Mastermind: guess the first code, in lexicographic order, consistent with
  all feedback so far (Knuth's simple strategy without minimax);
- Sudoku: the stored solution's value for the first empty cell. TextArena
  accepts only *correct* digits (it checks against the solution, not the
  rules), so the listed valid moves also reveal the solution.

``actions`` lists moves TextArena accepts in the current state (all of them,
except Mastermind where it is the first 10 codes consistent with the
feedback: listing every code would be thousands). ``progress`` is in [0, 1]
and 1 only when solved.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, ClassVar

_DIRS: dict[str, tuple[int, int]] = {
    "up": (-1, 0),
    "down": (1, 0),
    "left": (0, -1),
    "right": (0, 1),
}


class Game:
    """What the adapter needs to know about one TextArena game; ``ta`` is its env object."""

    #: ``module:Class`` of the TextArena env.
    entry: ClassVar[str]
    #: Example move, for feedback on malformed actions.
    example: ClassVar[str]

    def actions(self, ta: Any) -> list[str]:
        raise NotImplementedError

    def expert(self, ta: Any) -> str:
        raise NotImplementedError

    def progress(self, ta: Any) -> float:
        raise NotImplementedError

    def solved(self, ta: Any) -> bool:
        raise NotImplementedError


class TowerOfHanoi(Game):
    entry = "textarena.envs.TowerOfHanoi.env:TowerOfHanoiEnv"
    example = "[A C]"

    @staticmethod
    def _key(towers: dict[str, list[int]]) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(towers[t]) for t in "ABC")

    @staticmethod
    def _moves(state: tuple[tuple[int, ...], ...]) -> list[tuple[str, str, tuple[Any, ...]]]:
        out: list[tuple[str, str, tuple[Any, ...]]] = []
        for s, t in itertools.permutations(range(3), 2):
            src, dst = state[s], state[t]
            if src and (not dst or dst[-1] > src[-1]):
                nxt = [list(x) for x in state]
                nxt[t].append(nxt[s].pop())
                out.append(("ABC"[s], "ABC"[t], tuple(tuple(x) for x in nxt)))
        return out

    def actions(self, ta: Any) -> list[str]:
        return [f"[{s} {t}]" for s, t, _ in self._moves(self._key(ta.state.game_state["towers"]))]

    def expert(self, ta: Any) -> str:
        start = self._key(ta.state.game_state["towers"])
        goal = ((), (), tuple(range(ta.num_disks, 0, -1)))
        first: dict[tuple[Any, ...], str] = {start: ""}
        queue = deque([start])
        while queue:
            state = queue.popleft()
            if state == goal:
                return first[state]
            for s, t, nxt in self._moves(state):
                if nxt not in first:
                    first[nxt] = first[state] or f"[{s} {t}]"
                    queue.append(nxt)
        # Unreachable: every Tower of Hanoi position connects to the goal.
        raise RuntimeError(f"no Tower of Hanoi solution from {start}")

    def progress(self, ta: Any) -> float:
        return 1.0 if self.solved(ta) else min(float(ta._get_percentage_completion()), 0.99)

    def solved(self, ta: Any) -> bool:
        return ta.state.game_state["towers"]["C"] == list(range(ta.num_disks, 0, -1))


class GuessTheNumber(Game):
    entry = "textarena.envs.GuessTheNumber.env:GuessTheNumberEnv"
    example = "[10]"

    @staticmethod
    def _interval(ta: Any) -> tuple[int, int]:
        lo, hi = int(ta.min_number), int(ta.max_number)
        for guess, hint in ta.state.game_state["guess_history"]:
            if hint == "higher":
                lo = max(lo, guess + 1)
            else:
                hi = min(hi, guess - 1)
        return lo, hi

    def actions(self, ta: Any) -> list[str]:
        return [
            f"[{n}]" for n in range(ta.min_number, ta.max_number + 1) if n not in ta.guessed_numbers
        ]

    def expert(self, ta: Any) -> str:
        lo, hi = self._interval(ta)
        return f"[{(lo + hi) // 2}]"

    def progress(self, ta: Any) -> float:
        if self.solved(ta):
            return 1.0
        lo, hi = self._interval(ta)
        return min(1.0 - (hi - lo) / (ta.max_number - ta.min_number), 0.99)

    def solved(self, ta: Any) -> bool:
        return ta.game_number in ta.guessed_numbers


class FrozenLake(Game):
    entry = "textarena.envs.FrozenLake.env:FrozenLakeEnv"
    example = "[down]"

    @staticmethod
    def _distances(ta: Any) -> dict[tuple[int, int], int]:
        """Safe-path distance to the goal from every reachable cell (BFS from the goal)."""
        grid, size = ta.state.game_state["grid"], ta.size
        goal = tuple(ta.state.game_state["goal_pos"])
        dist = {goal: 0}
        queue = deque([goal])
        while queue:
            r, c = queue.popleft()
            for dr, dc in _DIRS.values():
                n = (r + dr, c + dc)
                if (
                    0 <= n[0] < size
                    and 0 <= n[1] < size
                    and n not in dist
                    and grid[n[0]][n[1]] != "H"
                ):
                    dist[n] = dist[(r, c)] + 1
                    queue.append(n)
        return dist

    def actions(self, ta: Any) -> list[str]:
        r, c = ta.state.game_state["player_pos"]
        return [
            f"[{name}]"
            for name, (dr, dc) in _DIRS.items()
            if 0 <= r + dr < ta.size and 0 <= c + dc < ta.size
        ]

    def expert(self, ta: Any) -> str:
        dist = self._distances(ta)
        r, c = ta.state.game_state["player_pos"]
        here = dist.get((r, c))
        for name, (dr, dc) in _DIRS.items():
            d = dist.get((r + dr, c + dc))
            if here is not None and d is not None and d < here:
                return f"[{name}]"
        raise RuntimeError(f"no safe path to the goal from {(r, c)}")  # generated maps have one

    def progress(self, ta: Any) -> float:
        if self.solved(ta):
            return 1.0
        dist = self._distances(ta)
        start = dist.get(tuple(ta.player_pos), 1)
        here = dist.get(tuple(ta.state.game_state["player_pos"]), start)
        return min(max(1.0 - here / max(start, 1), 0.0), 0.99)

    def solved(self, ta: Any) -> bool:
        return tuple(ta.state.game_state["player_pos"]) == tuple(ta.state.game_state["goal_pos"])


class Mastermind(Game):
    entry = "textarena.envs.Mastermind.env:MastermindEnv"
    example = "[1 2 3 4]"
    _listed = 10

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], list[tuple[int, ...]]] = {}

    @staticmethod
    def _pegs(guess: tuple[int, ...], code: tuple[int, ...]) -> tuple[int, int]:
        black = sum(g == c for g, c in zip(guess, code, strict=True))
        common = sum(min(guess.count(d), code.count(d)) for d in set(guess))
        return black, common - black

    def _consistent(self, ta: Any) -> list[tuple[int, ...]]:
        gs = ta.state.game_state
        rules = (gs["code_length"], gs["num_numbers"], gs["duplicate_numbers"])
        history = tuple((tuple(h["guess"]), h["black"], h["white"]) for h in gs["history"])
        if len(self._cache) > 1024:  # histories of past episodes
            self._cache.clear()
        return self._codes(rules, history)

    def _codes(self, rules: tuple[Any, ...], history: tuple[Any, ...]) -> list[tuple[int, ...]]:
        """Codes consistent with ``history``, filtered from those consistent with its prefix."""
        key = (*rules, history)
        if key not in self._cache:
            if not history:
                codes = self._all(*rules)
            else:
                guess, black, white = history[-1]
                codes = [
                    c
                    for c in self._codes(rules, history[:-1])
                    if c != guess and self._pegs(guess, c) == (black, white)
                ]
            self._cache[key] = codes
        return self._cache[key]

    @staticmethod
    def _all(length: int, numbers: int, duplicates: bool) -> list[tuple[int, ...]]:
        digits = range(1, numbers + 1)
        if duplicates:
            return list(itertools.product(digits, repeat=length))
        return list(itertools.permutations(digits, length))

    def actions(self, ta: Any) -> list[str]:
        return [f"[{' '.join(map(str, c))}]" for c in self._consistent(ta)[: self._listed]]

    def expert(self, ta: Any) -> str:
        codes = self._consistent(ta)
        if not codes:
            raise RuntimeError("no Mastermind code is consistent with the feedback")
        return f"[{' '.join(map(str, codes[0]))}]"

    def progress(self, ta: Any) -> float:
        if self.solved(ta):
            return 1.0
        gs = ta.state.game_state
        best = max((h["black"] for h in gs["history"]), default=0)
        return min(best / gs["code_length"], 0.99)

    def solved(self, ta: Any) -> bool:
        history = ta.state.game_state["history"]
        return bool(history) and history[-1]["black"] == ta.state.game_state["code_length"]


class Sudoku(Game):
    entry = "textarena.envs.Sudoku.env:SudokuEnv"
    example = "[5 3 7]"

    @staticmethod
    def _empty(ta: Any) -> list[tuple[int, int]]:
        board = ta.state.game_state["board"]
        return [(r, c) for r in range(9) for c in range(9) if board[r][c] == 0]

    def actions(self, ta: Any) -> list[str]:
        return [f"[{r + 1} {c + 1} {ta.full_grid[r][c]}]" for r, c in self._empty(ta)]

    def expert(self, ta: Any) -> str:
        r, c = self._empty(ta)[0]
        return f"[{r + 1} {c + 1} {ta.full_grid[r][c]}]"

    def progress(self, ta: Any) -> float:
        return 1.0 if self.solved(ta) else min(float(ta._get_percentage_completion()), 0.99)

    def solved(self, ta: Any) -> bool:
        return bool(ta.state.game_state["completed"])


GAMES: dict[str, type[Game]] = {
    "TowerOfHanoi": TowerOfHanoi,
    "GuessTheNumber": GuessTheNumber,
    "FrozenLake": FrozenLake,
    "Mastermind": Mastermind,
    "Sudoku": Sudoku,
}
