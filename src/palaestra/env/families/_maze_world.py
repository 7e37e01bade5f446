"""World model, rules and planner of the ``maze`` family (see ``maze.py``).

A world is a grid of equal rectangular rooms (MiniGrid's ``RoomGrid``,
Chevalier-Boisvert et al. 2019), stored as a flat string of cells (``#``
wall, ``.`` floor, ``+`` door) indexed by ``row * width + col``. What never
changes during an episode lives in :class:`World`; what does lives in
:class:`MazeState`. :func:`act` is the one transition function, used by the
environment, the planner and the generator alike.

The planner (:func:`plan`) is an A* search over *interactions* (pick up,
drop, unlock, and the move that meets the goal): between two interactions
the agent walks a shortest path, opening the closed doors it crosses (a door
costs one extra action). Its heuristic is a Manhattan-distance lower bound,
so the plan it returns is the shortest among plans of that shape. A first
pass considers only useful pick-ups (keys of locked doors, the goal's
object) and drops where the agent stands; if that finds nothing (say,
objects dropped in awkward places), a second pass allows every pick-up and
every drop spot.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, NamedTuple

GoalKind = Literal["go_to", "pick_up", "open", "reach", "fetch", "put_next"]
GOAL_KINDS: tuple[GoalKind, ...] = ("go_to", "pick_up", "open", "reach", "fetch", "put_next")

DIRS: tuple[str, ...] = ("north", "south", "east", "west")
OPEN, CLOSED, LOCKED = 0, 1, 2
DOOR_STATES = ("open", "closed", "locked")
WALL, FLOOR, DOOR = "#", ".", "+"


@dataclass(frozen=True)
class Item:
    kind: str
    colour: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass(frozen=True)
class Door:
    pos: int
    colour: str
    rooms: tuple[int, int]
    sides: tuple[int, int]  # the floor cells on either side


@dataclass(frozen=True)
class Room:
    name: str
    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class Goal:
    kind: GoalKind
    item: int = -1  # the object acted on (go_to, pick_up, fetch, put_next)
    door: int = -1  # open
    anchor: int = -1  # put_next: the object to put it next to


@dataclass(frozen=True, eq=False)
class World:
    """Everything about an episode that never changes (shared, not copied, by snapshots)."""

    width: int
    cells: str
    deltas: tuple[int, int, int, int]  # cell offsets of north, south, east, west
    layout: tuple[int, int]  # rows, columns of rooms
    rooms: tuple[Room, ...]
    room_of: tuple[int, ...]  # per cell: the room of a floor cell, else -1
    doors: tuple[Door, ...]
    door_at: dict[int, int]
    items: tuple[Item, ...]
    goal_square: int  # -1 when the goal needs none
    goal: Goal
    instruction: str
    goal_noun: str
    start: int
    start_items: tuple[int, ...]
    start_doors: tuple[int, ...]
    plan: tuple[str, ...] = ()  # the planner's solution from the start
    #: ("key", item) | ("door", door) | ("hold", item) | ("final", -1)
    subgoals: tuple[tuple[str, int], ...] = ()

    def __deepcopy__(self, memo: dict[int, object]) -> World:
        return self

    def item_named(self, name: str) -> int:
        for i, it in enumerate(self.items):
            if it.name == name:
                return i
        return -1

    def door_coloured(self, colour: str) -> int:
        for i, d in enumerate(self.doors):
            if d.colour == colour:
                return i
        return -1


@dataclass
class MazeState:
    """All that changes during an episode."""

    world: World
    agent: int
    carrying: int  # item index, -1 for empty hands
    items: list[int]  # cell of each item, -1 while carried
    doors: list[int]  # OPEN / CLOSED / LOCKED
    held_ever: int = 0  # bit i: item i was picked up at some point
    solved: bool = False

    def key(self) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
        return (self.agent, self.carrying, tuple(self.items), tuple(self.doors))


def initial_state(world: World) -> MazeState:
    return MazeState(world, world.start, -1, list(world.start_items), list(world.start_doors))


# ---- rules -------------------------------------------------------------------------


class Cmd(NamedTuple):
    verb: Literal["go", "pick up", "drop", "open", "unlock"]
    name: str = ""  # "blue key" for objects, "blue" for doors
    direction: int = -1


class Fail(NamedTuple):
    """Why an action is impossible; ``maze.py`` turns it into feedback text."""

    code: str
    direction: int = -1
    item: int = -1
    door: int = -1


def occupant(st: MazeState, pos: int) -> int:
    for i, p in enumerate(st.items):
        if p == pos:
            return i
    return -1


def drop_blocker(st: MazeState, pos: int) -> Fail | None:
    """Why nothing can be dropped on ``pos`` (a wall, a door, an object, the goal square)."""
    w = st.world
    cell = w.cells[pos]
    if cell == WALL:
        return Fail("drop_wall")
    if cell == DOOR:
        return Fail("drop_door", door=w.door_at[pos])
    if pos == w.goal_square:
        return Fail("drop_goal")
    i = occupant(st, pos)
    return Fail("drop_item", item=i) if i >= 0 else None


def act(st: MazeState, cmd: Cmd) -> Fail | None:
    """Apply ``cmd`` to ``st`` in place, or return why it is impossible (``st`` unchanged)."""
    w = st.world
    if cmd.verb == "go":
        dest = st.agent + w.deltas[cmd.direction]
        cell = w.cells[dest]
        if cell == WALL:
            return Fail("wall", cmd.direction)
        if cell == DOOR:
            d = w.door_at[dest]
            if st.doors[d] != OPEN:
                code = "door_closed" if st.doors[d] == CLOSED else "door_locked"
                return Fail(code, cmd.direction, door=d)
        elif (i := occupant(st, dest)) >= 0:
            return Fail("blocked", cmd.direction, item=i)
        st.agent = dest
    elif cmd.verb == "pick up":
        i = w.item_named(cmd.name)
        if i < 0 or st.items[i] < 0 or st.items[i] - st.agent not in w.deltas:
            return Fail("not_adjacent", item=i)
        if st.carrying >= 0:
            return Fail("hands_full", item=st.carrying)
        st.items[i] = -1
        st.carrying = i
        st.held_ever |= 1 << i
    elif cmd.verb == "drop":
        i = st.carrying
        if i < 0 or w.items[i].name != cmd.name:
            return Fail("not_carrying", item=w.item_named(cmd.name))
        k = cmd.direction
        if k < 0:  # no direction given: the first free cell in north, south, east, west order
            free = [j for j in range(4) if drop_blocker(st, st.agent + w.deltas[j]) is None]
            if not free:
                return Fail("no_room", item=i)
            k = free[0]
        why = drop_blocker(st, st.agent + w.deltas[k])
        if why is not None:
            return why._replace(direction=k)
        st.items[i] = st.agent + w.deltas[k]
        st.carrying = -1
    else:  # open / unlock
        d = w.door_coloured(cmd.name)
        if d < 0 or w.doors[d].pos - st.agent not in w.deltas:
            return Fail("no_door", door=d)
        state = st.doors[d]
        if state == OPEN:
            return Fail("already_open", door=d)
        if cmd.verb == "open" and state == LOCKED:
            return Fail("open_locked", door=d)
        if cmd.verb == "unlock":
            if state == CLOSED:
                return Fail("not_locked", door=d)
            if st.carrying < 0 or w.items[st.carrying] != Item("key", w.doors[d].colour):
                return Fail("no_key", door=d)
        st.doors[d] = OPEN
    st.solved = goal_met(st)
    return None


def goal_met(st: MazeState) -> bool:
    w, g = st.world, st.world.goal
    if g.kind == "go_to":
        p = st.items[g.item]
        return p >= 0 and p - st.agent in w.deltas
    if g.kind == "pick_up":
        return st.carrying == g.item
    if g.kind == "open":
        return st.doors[g.door] == OPEN
    if g.kind == "reach":
        return st.agent == w.goal_square
    if g.kind == "fetch":
        return st.agent == w.goal_square and st.carrying == g.item
    p, q = st.items[g.item], st.items[g.anchor]
    return p >= 0 and q >= 0 and p - q in w.deltas


def action_text(cmd: Cmd) -> str:
    if cmd.verb == "go":
        return f"go {DIRS[cmd.direction]}"
    if cmd.verb in ("open", "unlock"):
        return f"{cmd.verb} {cmd.name} door"
    if cmd.verb == "drop":
        return (
            f"drop {cmd.name} {DIRS[cmd.direction]}" if cmd.direction >= 0 else f"drop {cmd.name}"
        )
    return f"pick up {cmd.name}"


# ---- planner -----------------------------------------------------------------------

_INF = 1 << 30
# agent, carrying, item cells, door states, and whether the carried object was just picked up
_Node = tuple[int, int, tuple[int, ...], tuple[int, ...], bool]
_Macro = tuple[int, tuple[Cmd, ...]]  # walk to this cell, then do these


def _nav(
    w: World, agent: int, items: tuple[int, ...], doors: tuple[int, ...]
) -> tuple[list[int], list[int]]:
    """Walking cost to every cell (entering a closed door costs 2: open it, then go), and the
    reachable cells, nearest first."""
    cells, door_at = w.cells, w.door_at
    dist = [_INF] * len(cells)
    dist[agent] = 0
    blocked = set(items)
    buckets: list[list[int]] = [[agent], [], []]
    order: list[int] = []
    d = 0
    while d < len(buckets):
        for pos in buckets[d]:
            if dist[pos] != d:
                continue
            order.append(pos)
            for delta in w.deltas:
                q = pos + delta
                cell = cells[q]
                if cell == FLOOR:
                    if q in blocked:
                        continue
                    nd = d + 1
                elif cell == DOOR:
                    s = doors[door_at[q]]
                    if s == LOCKED:
                        continue
                    nd = d + (2 if s == CLOSED else 1)
                else:
                    continue
                if nd < dist[q]:
                    dist[q] = nd
                    while len(buckets) <= nd:
                        buckets.append([])
                    buckets[nd].append(q)
        d += 1
    return dist, order


def _path(w: World, agent: int, doors: tuple[int, ...], dist: list[int], target: int) -> list[int]:
    """The cells of the shortest path to ``target`` that ``dist`` measured (fixed tie-breaking)."""
    path = [target]
    pos = target
    while pos != agent:
        step = 2 if w.cells[pos] == DOOR and doors[w.door_at[pos]] == CLOSED else 1
        for delta in w.deltas:
            if dist[pos - delta] == dist[pos] - step:
                pos -= delta
                break
        else:  # pragma: no cover - dist is a shortest-path tree by construction
            raise RuntimeError("broken shortest-path tree")
        path.append(pos)
    return path[::-1]


def _opened(w: World, path: list[int], doors: tuple[int, ...]) -> tuple[int, ...]:
    """Door states after walking ``path`` (the closed doors on it get opened)."""
    if CLOSED not in doors:
        return doors
    new = list(doors)
    for pos in path:
        if w.cells[pos] == DOOR:
            new[w.door_at[pos]] = OPEN
    return tuple(new)


def _harmless(w: World, c: int, items: tuple[int, ...]) -> bool:
    """Whether an object on ``c`` leaves every walkable cell connected (doors count as walkable).

    The digital-topology "simple point" test: the walkable 4-neighbours of
    ``c`` must be connected to each other inside its 3x3 window, then any path
    through ``c`` can go around it. A cell in front of a door never passes.
    """
    width, cells = w.width, w.cells

    def walkable(q: int) -> bool:
        return cells[q] == DOOR or (cells[q] == FLOOR and q not in items)

    ends = [c + dl for dl in w.deltas if walkable(c + dl)]
    if len(ends) <= 1:
        return True
    window = {
        c + dr * width + dc
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if (dr or dc) and walkable(c + dr * width + dc)
    }
    seen, todo = {ends[0]}, [ends[0]]
    for q in todo:
        for dl in w.deltas:
            if q + dl in window and q + dl not in seen:
                seen.add(q + dl)
                todo.append(q + dl)
    return all(e in seen for e in ends)


def _drop_spots(
    w: World, order: list[int], items: tuple[int, ...], n: int
) -> list[tuple[int, int, int]]:
    """(stand, direction, cell) of the ``n`` nearest harmless drops (``order``: nearest first)."""
    out: list[tuple[int, int, int]] = []
    chosen: set[int] = set()
    for p in order:
        for k, c in _free_around(w, p, items):
            if c not in chosen and _harmless(w, c, items):
                chosen.add(c)
                out.append((p, k, c))
                if len(out) == n:
                    return out
    return out


def _free_around(w: World, pos: int, items: tuple[int, ...]) -> list[tuple[int, int]]:
    """(direction, cell) of the neighbours of ``pos`` an object can be dropped on."""
    out: list[tuple[int, int]] = []
    for k, delta in enumerate(w.deltas):
        c = pos + delta
        if w.cells[c] == FLOOR and c != w.goal_square and c not in items:
            out.append((k, c))
    return out


def _successors(w: World, node: _Node, wide: bool) -> list[tuple[int, _Node | None, _Macro]]:
    """(cost, next node, macro) per interaction; the next node is None when the goal is met."""
    agent, carrying, items, doors, fresh = node
    dist, order = _nav(w, agent, items, doors)
    g = w.goal
    out: list[tuple[int, _Node | None, _Macro]] = []

    def near(cell: int) -> list[int]:
        return [cell + dl for dl in w.deltas if dist[cell + dl] < _INF]

    def walk_to(q: int) -> tuple[int, ...]:
        return _opened(w, _path(w, agent, doors, dist, q), doors)

    # -- the move that meets the goal
    target = items[g.item] if g.item >= 0 else -1
    if g.kind == "go_to":
        for q in near(target) if target >= 0 else ():
            out.append((dist[q], None, (q, ())))
        if carrying == g.item:
            for k, _ in _free_around(w, agent, items)[:1]:
                out.append((1, None, (agent, (Cmd("drop", w.items[carrying].name, k),))))
    elif g.kind == "pick_up" and carrying < 0:
        for q in near(target):
            out.append((dist[q] + 1, None, (q, (Cmd("pick up", w.items[g.item].name),))))
    elif g.kind == "open":
        door, state = w.doors[g.door], doors[g.door]
        has_key = carrying >= 0 and w.items[carrying] == Item("key", door.colour)
        if state == CLOSED or (state == LOCKED and has_key):
            cmd = Cmd("open" if state == CLOSED else "unlock", door.colour)
            for q in door.sides:
                if dist[q] < _INF:
                    out.append((dist[q] + 1, None, (q, (cmd,))))
    elif g.kind == "reach" or (g.kind == "fetch" and carrying == g.item):
        if dist[w.goal_square] < _INF:
            out.append((dist[w.goal_square], None, (w.goal_square, ())))
    elif g.kind == "put_next" and carrying == g.item and items[g.anchor] >= 0:
        for _, c in _free_around(w, items[g.anchor], items):
            for k, dl in enumerate(w.deltas):
                if dist[c - dl] < _INF:
                    cmd = Cmd("drop", w.items[g.item].name, k)
                    out.append((dist[c - dl] + 1, None, (c - dl, (cmd,))))

    # -- interactions on the way
    if carrying < 0:
        locked = {w.doors[j].colour for j, s in enumerate(doors) if s == LOCKED}
        for i, pos in enumerate(items):
            it = w.items[i]
            if pos < 0:
                continue
            useful = i == g.item or (it.kind == "key" and it.colour in locked)
            new_items = (*items[:i], -1, *items[i + 1 :])
            # Objects that block a passage may need moving (the random agent leaves them
            # in doorways); others only in the second pass.
            if not (useful or wide or not _harmless(w, pos, new_items)):
                continue
            for q in near(pos):
                nxt = (q, i, new_items, walk_to(q), useful)
                out.append((dist[q] + 1, nxt, (q, (Cmd("pick up", it.name),))))
        return out
    it = w.items[carrying]
    if it.kind == "key":
        for j, door in enumerate(w.doors):
            if door.colour == it.colour and doors[j] == LOCKED:
                for q in door.sides:
                    if dist[q] < _INF:
                        new_doors = list(walk_to(q))
                        new_doors[j] = OPEN
                        nxt = (q, carrying, items, tuple(new_doors), False)
                        out.append((dist[q] + 1, nxt, (q, (Cmd("unlock", door.colour),))))
    # Dropping what was just picked up is pointless, unless the first pass failed.
    if fresh and not wide:
        return out
    # Drops go to the nearest cells where the object blocks nothing; the second pass
    # also tries more spots and every cell around the agent.
    spots = _drop_spots(w, order, items, 8 if wide else 2)
    if wide:
        spots += [(agent, k, c) for k, c in _free_around(w, agent, items)]
    for p, k, c in spots:
        new_items = (*items[:carrying], c, *items[carrying + 1 :])
        nxt = (p, -1, new_items, walk_to(p), False)
        out.append((dist[p] + 1, nxt, (p, (Cmd("drop", it.name, k),))))
    return out


def _h(w: World, node: _Node) -> int:
    """A lower bound on the actions left (Manhattan distances; walls and doors ignored)."""
    agent, carrying, items, _, _ = node
    g, width = w.goal, w.width

    def md(a: int, b: int) -> int:
        return abs(a // width - b // width) + abs(a % width - b % width)

    busy = 1 if carrying >= 0 and carrying != g.item else 0  # it must be dropped first
    p = items[g.item] if g.item >= 0 else -1
    if g.kind == "reach":
        return md(agent, w.goal_square)
    if g.kind == "open":
        return md(agent, w.doors[g.door].pos)
    if g.kind == "go_to":
        return max(md(agent, p) - 1, 0) if p >= 0 else 1
    if g.kind == "pick_up":
        return md(agent, p) + busy
    if g.kind == "fetch":
        if p < 0:
            return md(agent, w.goal_square)
        return md(agent, p) + max(md(p, w.goal_square) - 1, 0) + busy
    a = items[g.anchor]
    if a < 0:  # carrying the anchor: it must be dropped first
        return 1
    if p < 0:
        return max(md(agent, a) - 2, 0) + 1
    return md(agent, p) + max(md(p, a) - 3, 0) + 1 + busy


def plan(st: MazeState, wide: bool = True, max_nodes: int = 5000) -> list[Cmd] | None:
    """A shortest sequence of actions that meets the goal from ``st``; None if none was found.

    ``wide=False`` runs only the first, restricted pass (the generator uses it,
    so every generated world is solvable by the cheap pass).
    """
    if st.solved:
        return []
    for w in (False, True) if wide else (False,):
        found = _search(st, w, max_nodes)
        if found is not None:
            return found
    return None


def _search(st: MazeState, wide: bool, max_nodes: int) -> list[Cmd] | None:
    w = st.world
    start: _Node = (*st.key(), False)
    best: dict[_Node, int] = {start: 0}
    parent: dict[_Node, tuple[_Node, _Macro]] = {}
    heap: list[tuple[int, int, int, _Node | None, _Node, _Macro]] = [
        (_h(w, start), 0, 0, start, start, (st.agent, ()))
    ]
    tie = expanded = 0
    while heap:
        _, _, cost, node, prev, macro = heapq.heappop(heap)
        if node is None:  # the cheapest way to meet the goal
            macros = [macro]
            while prev in parent:
                prev, m = parent[prev]
                macros.append(m)
            return _unfold(st, macros[::-1])
        if best.get(node, _INF) < cost:
            continue
        expanded += 1
        if expanded > max_nodes:
            return None
        for c, nxt, m in _successors(w, node, wide):
            total = cost + c
            if nxt is not None:
                if best.get(nxt, _INF) <= total:
                    continue
                best[nxt] = total
                parent[nxt] = (node, m)
            tie += 1
            f = total + (_h(w, nxt) if nxt is not None else 0)
            heapq.heappush(heap, (f, tie, total, nxt, node, m))
    return None


def _unfold(st: MazeState, macros: list[_Macro]) -> list[Cmd]:
    """Turn macros into primitive actions by replaying them on a copy of ``st``."""
    w = st.world
    sim = MazeState(w, st.agent, st.carrying, list(st.items), list(st.doors))
    out: list[Cmd] = []
    for target, cmds in macros:
        doors = tuple(sim.doors)
        dist, _ = _nav(w, sim.agent, tuple(sim.items), doors)
        path = _path(w, sim.agent, doors, dist, target)
        walk: list[Cmd] = []
        for a, b in pairwise(path):
            if w.cells[b] == DOOR and sim.doors[w.door_at[b]] == CLOSED:
                walk.append(Cmd("open", w.doors[w.door_at[b]].colour))
            walk.append(Cmd("go", direction=w.deltas.index(b - a)))
        for cmd in (*walk, *cmds):
            if act(sim, cmd) is not None:  # pragma: no cover - the search and the rules agree
                raise RuntimeError(f"the planner produced an impossible action: {cmd}")
            out.append(cmd)
            if sim.solved:
                return out
    return out
