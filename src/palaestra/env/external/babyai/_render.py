"""Text rendering of a BabyAI agent's egocentric view, in the style of BabyAI-text (AgentGym).

AgentGym's BabyAI environment (Xi et al., 2024, ``agentenv-babyai``) describes
the 7x7 partial view as a list of objects with their offsets ("There is a red
ball 1 2 steps in front of you and 1 steps to your left") and the barrier
ahead. We keep that idea and write it as one sentence per kind of fact:

    You see a red ball 2 steps ahead and 1 step to the left, and a closed blue
    door 3 steps ahead.
    Ahead: a wall 4 steps away. Left: a wall 1 step away. Right: nothing in view.
    You are carrying nothing.

Deviations: no per-colour numbering of objects ("red ball 1") because our
actions are primitive moves, not AgentGym's "go to red ball 1"; walls are
reported only along the three rays (ahead, left, right) instead of as a
single "facing a wall" line, since a primitive-action agent needs both sides.
Only cells the agent can see (MiniGrid's visibility mask, no seeing through
walls) are described.
"""

from __future__ import annotations

from typing import Any

from minigrid.core.world_object import WorldObj
from minigrid.minigrid_env import MiniGridEnv


def _steps(n: int) -> str:
    return f"{n} step{'s' if n != 1 else ''}"


def name(obj: WorldObj) -> str:
    """'a red ball', 'a locked blue door', 'a wall'."""
    if obj.type == "wall":
        return "a wall"
    if obj.type == "door":
        door: Any = obj
        state = "locked" if door.is_locked else "open" if door.is_open else "closed"
        return f"a {state} {obj.color} door"
    if obj.type == "goal":
        return "the green goal square"
    if obj.type == "lava":
        return "lava"
    return f"a {obj.color} {obj.type}"


def _offset(fwd: int, lat: int) -> str:
    parts: list[str] = []
    if fwd:
        parts.append(f"{_steps(fwd)} ahead")
    if lat:
        parts.append(f"{_steps(abs(lat))} to the {'right' if lat > 0 else 'left'}")
    return " and ".join(parts) if parts else "here"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def describe_view(env: MiniGridEnv) -> str:
    """The agent's view as text: visible objects, the nearest thing on three rays, the inventory."""
    grid, vis = env.gen_obs_grid()
    size = env.agent_view_size
    ax, ay = size // 2, size - 1  # the agent's cell in the view: bottom centre, facing "up"

    seen: list[tuple[int, int, str]] = []
    for j in range(size):
        for i in range(size):
            if not vis[i, j] or (i, j) == (ax, ay):
                continue
            cell = grid.get(i, j)
            if cell is None or cell.type == "wall":
                continue
            fwd, lat = ay - j, i - ax
            seen.append((fwd + abs(lat), fwd, f"{name(cell)} {_offset(fwd, lat)}"))
    seen.sort()
    if seen:
        lines = [f"You see {_join([s for _, _, s in seen])}."]
    else:
        lines = ["You see no objects, only floor and walls."]

    rays: list[str] = []
    for label, (di, dj) in (("Ahead", (0, -1)), ("Left", (-1, 0)), ("Right", (1, 0))):
        i, j, dist, what = ax + di, ay + dj, 1, "nothing in view"
        while 0 <= i < size and 0 <= j < size and vis[i, j]:
            cell = grid.get(i, j)
            if cell is not None:
                what = f"{name(cell)} {_steps(dist)} away"
                break
            i, j, dist = i + di, j + dj, dist + 1
        rays.append(f"{label}: {what}.")
    lines.append(" ".join(rays))

    carrying = env.carrying
    lines.append(f"You are carrying {name(carrying) if carrying else 'nothing'}.")
    return "\n".join(lines)
