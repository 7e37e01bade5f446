"""Task generator of the ``maze`` family: rooms, doors, keys, objects and a goal.

Worlds follow BabyAI's room-grid levels (Chevalier-Boisvert et al. 2019,
"BabyAI: A Platform to Study the Sample Efficiency of Grounded Language
Learning"): equal rooms in a grid, a door on each edge of a random spanning
tree of the rooms (plus, on hard, sometimes one more door that closes a
loop), locked doors whose keys lie before them, an instruction naming a
goal, and distractor objects. The doors to lock are chosen on the way from
the start room to a far room, each key behind the previous locked door, so
medium and hard tasks need their keys in order. Every candidate world is
solved by the planner (``_maze_world.plan``); a task exists only if it was
solved within the difficulty's step budget and used the locked doors.

Train and test share :data:`TRAIN_VOCAB`; heldout uses :data:`HELDOUT_VOCAB`,
whose colours, object kinds, goal-square noun and instruction templates are
all different (keys and doors are the mechanics and stay).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

from palaestra.env.families._maze_world import (
    CLOSED,
    DOOR,
    FLOOR,
    GOAL_KINDS,
    LOCKED,
    OPEN,
    WALL,
    Door,
    Goal,
    GoalKind,
    Item,
    Room,
    World,
    action_text,
    goal_met,
    initial_state,
    plan,
)


@dataclass(frozen=True)
class Vocab:
    """Surface words of a split: heldout shares none of its colours, objects or templates."""

    colours: tuple[str, ...]
    kinds: tuple[str, ...]  # carryable objects other than keys
    goal_noun: str
    templates: dict[str, tuple[str, ...]]


TRAIN_VOCAB = Vocab(
    colours=("red", "green", "blue", "yellow", "white", "black"),
    kinds=("ball", "cone"),
    goal_noun="goal square",
    templates={
        "go_to": ("Go to the {o}.", "Walk over to the {o}."),
        "pick_up": ("Pick up the {o}.", "Get the {o} and keep it in your hands."),
        "open": ("Open the {d} door.", "Make sure the {d} door is open."),
        "reach": ("Go to the goal square.", "Walk onto the goal square."),
        "fetch": (
            "Pick up the {o} and go to the goal square.",
            "Carry the {o} to the goal square.",
        ),
        "put_next": ("Put the {o} next to the {a}.", "Move the {o} so that it is next to the {a}."),
    },
)
HELDOUT_VOCAB = Vocab(
    colours=("purple", "grey", "orange", "pink", "brown", "cyan"),
    kinds=("box", "star"),
    goal_noun="exit tile",
    templates={
        "go_to": (
            "Find the {o} and stand beside it.",
            "Your target is the {o}: end up adjacent to it.",
        ),
        "pick_up": ("Fetch the {o} and hold it.", "Your hands should end up holding the {o}."),
        "open": ("See to it that the {d} door stands open.", "Unbar the {d} door."),
        "reach": ("Reach the exit tile.", "Stand on the exit tile."),
        "fetch": (
            "Bring the {o} with you to the exit tile.",
            "Finish on the exit tile holding the {o}.",
        ),
        "put_next": (
            "Leave the {o} beside the {a}.",
            "Arrange for the {o} to rest adjacent to the {a}.",
        ),
    },
)


class _Cfg(NamedTuple):
    layouts: tuple[tuple[int, int], ...]  # rows x columns of rooms
    sizes: tuple[int, int]  # room interior side, inclusive range (and the allowed room_size)
    locked: int
    distractors: tuple[int, int]
    goals: tuple[GoalKind, ...]  # drawn from when the goal is not given
    # The planner's solution must be this long (the maximum leaves room under the step limit).
    plan_len: tuple[int, int]


CONFIGS: dict[str, _Cfg] = {
    "easy": _Cfg(((1, 1),), (6, 8), 0, (3, 5), ("go_to", "pick_up", "fetch", "put_next"), (5, 40)),
    "medium": _Cfg(((1, 2), (2, 1), (1, 3), (3, 1)), (3, 5), 1, (1, 3), GOAL_KINDS, (6, 60)),
    "hard": _Cfg(((2, 2), (2, 3), (3, 2)), (3, 4), 2, (3, 5), GOAL_KINDS, (14, 80)),
}
#: ``Task.params`` the generator accepts, with the values allowed.
PARAM_HELP = {
    "goal": f"one of {', '.join(GOAL_KINDS)} ('open' not on easy, which has no doors)",
    "distractors": "number of distractor objects, 0 to 6",
    "room_size": "room interior side in cells: 4 to 9 on easy, 3 to 6 on medium, 3 to 5 on hard",
}
_ROOM_SIZES = {"easy": (4, 9), "medium": (3, 6), "hard": (3, 5)}


def validate_params(difficulty: str, params: dict[str, object]) -> None:
    """Raise ``ValueError`` naming the first unknown or out-of-range parameter."""
    for name, value in params.items():
        if name not in PARAM_HELP:
            raise ValueError(
                f"unknown maze parameter {name!r}; accepted: "
                + "; ".join(f"{k} ({v})" for k, v in PARAM_HELP.items())
            )
        if name == "goal":
            goals = [k for k in GOAL_KINDS if k != "open" or CONFIGS[difficulty].locked]
            if value not in goals:
                raise ValueError(
                    f"param 'goal'={value!r} is not a {difficulty} goal ({', '.join(goals)})"
                )
        else:
            lo, hi = (0, 6) if name == "distractors" else _ROOM_SIZES[difficulty]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"param {name!r}={value!r} must be an integer from {lo} to {hi}")


@lru_cache(maxsize=1024)
def generate(key: str, split: str, difficulty: str, params_json: str) -> World:
    """The world of one task; ``key`` seeds the generator. Cached: worlds are immutable."""
    params = json.loads(params_json)
    validate_params(difficulty, params)
    rng = random.Random(key)
    vocab = HELDOUT_VOCAB if split == "heldout" else TRAIN_VOCAB
    for _ in range(1000):
        world = _attempt(rng, CONFIGS[difficulty], vocab, params)
        if world is not None:
            return world
    raise ValueError(f"could not generate a solvable maze for {key!r} with params {params}")


class _Layout(NamedTuple):
    shape: tuple[int, int]
    width: int
    cells: list[str]
    room_of: list[int]
    rooms: list[Room]
    doors: list[Door]


def _layout(rng: random.Random, cfg: _Cfg, params: dict[str, object], loop: bool) -> _Layout:
    """Rooms in a grid, and doors on a random spanning tree of them (plus maybe one loop)."""
    rows, cols = rng.choice(cfg.layouts)
    size = params.get("room_size")
    if isinstance(size, int):
        rh = rw = size
    else:  # a single room may be oblong; rooms of a grid are square
        rh = rng.randint(*cfg.sizes)
        rw = rng.randint(*cfg.sizes) if rows * cols == 1 else rh
    height, width = rows * (rh + 1) + 1, cols * (rw + 1) + 1
    cells = [WALL] * (height * width)
    room_of = [-1] * (height * width)
    rooms: list[Room] = []
    for i in range(rows):
        for j in range(cols):
            top, left = i * (rh + 1) + 1, j * (rw + 1) + 1
            rooms.append(Room(_room_name(i, j, rows, cols), top, left, rh, rw))
            for r in range(top, top + rh):
                for c in range(left, left + rw):
                    cells[r * width + c] = FLOOR
                    room_of[r * width + c] = len(rooms) - 1

    edges = [(a, a + 1) for a in range(rows * cols) if (a % cols) + 1 < cols]
    edges += [(a, a + cols) for a in range(rows * cols - cols)]
    rng.shuffle(edges)
    comp = list(range(rows * cols))

    def find(a: int) -> int:
        while comp[a] != a:
            a = comp[a]
        return a

    tree: list[tuple[int, int]] = []
    spare: list[tuple[int, int]] = []
    for a, b in edges:
        if find(a) != find(b):
            comp[find(a)] = find(b)
            tree.append((a, b))
        else:
            spare.append((a, b))
    if spare and loop and rng.random() < 0.5:
        tree.append(spare[0])
    doors: list[Door] = []
    for a, b in tree:
        ra = rooms[a]
        if a // cols == b // cols:  # same row of rooms: a door in the east wall of a
            pos = (ra.top + rng.randrange(rh)) * width + ra.left + rw
            sides = (pos - 1, pos + 1)
        else:  # a door in the south wall of a
            pos = (ra.top + rh) * width + ra.left + rng.randrange(rw)
            sides = (pos - width, pos + width)
        cells[pos] = DOOR
        doors.append(Door(pos, "", (a, b), sides))
    return _Layout((rows, cols), width, cells, room_of, rooms, doors)


def _door_path(doors: list[Door], start: int, goal: int) -> list[int]:
    """The doors on a shortest room-to-room path (by door count)."""
    came: dict[int, tuple[int, int]] = {start: (-1, -1)}
    todo = [start]
    for room in todo:
        for i, d in enumerate(doors):
            if room in d.rooms:
                other = d.rooms[0] + d.rooms[1] - room
                if other not in came:
                    came[other] = (room, i)
                    todo.append(other)
    path: list[int] = []
    while goal != start:
        goal, d = came[goal]
        path.append(d)
    return path[::-1]


def _region(doors: list[Door], start: int, blocked: set[int]) -> set[int]:
    """The rooms reachable from ``start`` without passing the ``blocked`` doors."""
    seen, todo = {start}, [start]
    for room in todo:
        for i, d in enumerate(doors):
            if i not in blocked and room in d.rooms:
                other = d.rooms[0] + d.rooms[1] - room
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
    return seen


def _room_name(i: int, j: int, rows: int, cols: int) -> str:
    ns = {1: ("",), 2: ("north", "south"), 3: ("north", "central", "south")}[rows][i]
    we = {1: ("",), 2: ("west", "east"), 3: ("west", "central", "east")}[cols][j]
    if ns == we == "central":
        return "central room"
    parts = [p for p in (ns, we) if p]
    return ("-".join(parts) + " room") if parts else "room"


def _attempt(
    rng: random.Random, cfg: _Cfg, vocab: Vocab, params: dict[str, object]
) -> World | None:
    """One candidate world, or None when it came out unsolvable, too short or too long."""
    lay = _layout(rng, cfg, params, loop=cfg.locked >= 2)
    doors, rooms, width = lay.doors, lay.rooms, lay.width
    colours = list(vocab.colours)
    rng.shuffle(colours)
    doors = [replace(d, colour=colours[i]) for i, d in enumerate(doors)]
    start_room = rng.randrange(len(rooms))
    door_states = [rng.choice((OPEN, CLOSED)) for _ in doors]

    # Lock doors on the way from the start room to a far room, each key behind the
    # previous locked door, so the keys are needed in order.
    order: list[int] = []
    if cfg.locked:
        far = [r for r in range(len(rooms)) if len(_door_path(doors, start_room, r)) >= cfg.locked]
        if not far:
            return None
        path = _door_path(doors, start_room, rng.choice(far))
        order = sorted(rng.sample(path, cfg.locked), key=path.index)
    key_rooms: list[int] = []
    opened: set[int] = set()
    for n, d in enumerate(order):
        reach = _region(doors, start_room, set(order[n:]))
        key_rooms.append(rng.choice(sorted(reach - opened) or sorted(reach)))
        opened = reach
        door_states[d] = LOCKED
    everywhere = sorted(range(len(rooms)))
    beyond = sorted(set(everywhere) - opened)  # behind the last locked door
    if not beyond:
        return None  # a loop bypasses the last locked door

    given = params.get("goal")  # validated: a goal kind
    kind = rng.choice(cfg.goals) if given is None else GOAL_KINDS[GOAL_KINDS.index(given)]
    if kind == "open" and not doors:
        return None
    n_extra = params.get("distractors")
    n_extra = n_extra if isinstance(n_extra, int) else rng.randint(*cfg.distractors)

    # Objects are unique by name; a locked door's colour has one key: the one that opens it.
    items = [Item("key", doors[d].colour) for d in order]
    item_rooms = list(key_rooms)
    locked_colours = {doors[d].colour for d in order}

    def new_item(room: int, allow_key: bool = True) -> int:
        used = {it.name for it in items}
        options = [
            Item(k, c)
            for k in (*vocab.kinds, "key")
            for c in vocab.colours
            if Item(k, c).name not in used
            and (k != "key" or (allow_key and c not in locked_colours))
        ]
        items.append(rng.choice(options))
        item_rooms.append(room)
        return len(items) - 1

    target = anchor = door_goal = -1
    goal_room = rng.choice(beyond)
    if kind == "open":
        door_goal = order[-1] if order else rng.randrange(len(doors))
        door_states[door_goal] = max(door_states[door_goal], CLOSED)
    elif kind in ("go_to", "pick_up"):
        target = new_item(goal_room, allow_key=kind == "pick_up")
    elif kind == "fetch":
        target = new_item(rng.choice(everywhere))
    elif kind == "put_next":
        target = new_item(rng.choice(everywhere), allow_key=False)
        anchor = new_item(goal_room, allow_key=False)
    for _ in range(n_extra):
        new_item(rng.choice(everywhere))

    # Nothing stands in front of a door.
    taken = {s for d in doors for s in d.sides}

    def cell_in(room: int) -> int:
        r = rooms[room]
        options = [
            (r.top + y) * width + r.left + x
            for y in range(r.height)
            for x in range(r.width)
            if (r.top + y) * width + r.left + x not in taken
        ]
        if not options:
            return -1
        pos = rng.choice(options)
        taken.update((pos, pos - width, pos + width, pos - 1, pos + 1))
        return pos

    # The start and goal square keep their neighbours free (nothing is next to the start).
    start = cell_in(start_room)
    goal_square = cell_in(goal_room) if kind in ("reach", "fetch") else -1
    positions = [_cell_for_item(rng, rooms[r], width, taken) for r in item_rooms]
    if start < 0 or -1 in positions or (kind in ("reach", "fetch") and goal_square < 0):
        return None

    template = rng.choice(vocab.templates[kind])
    instruction = template.format(
        o=items[target].name if target >= 0 else "",
        a=items[anchor].name if anchor >= 0 else "",
        d=doors[door_goal].colour if door_goal >= 0 else "",
    )
    world = World(
        width=width,
        cells="".join(lay.cells),
        deltas=(-width, width, 1, -1),
        layout=lay.shape,
        rooms=tuple(rooms),
        room_of=tuple(lay.room_of),
        doors=tuple(doors),
        door_at={d.pos: i for i, d in enumerate(doors)},
        items=tuple(items),
        goal_square=goal_square,
        goal=Goal(kind, target, door_goal, anchor),
        instruction=instruction,
        goal_noun=vocab.goal_noun,
        start=start,
        start_items=tuple(positions),
        start_doors=tuple(door_states),
    )
    st = initial_state(world)
    if goal_met(st):
        return None
    found = plan(st, wide=False)
    if found is None or not cfg.plan_len[0] <= len(found) <= cfg.plan_len[1]:
        return None
    unlocked = [world.door_coloured(c.name) for c in found if c.verb == "unlock"]
    if len(unlocked) < cfg.locked:
        return None  # a loop made a locked door pointless
    subgoals: list[tuple[str, int]] = []
    for d in unlocked:
        subgoals.append(("key", world.item_named(f"{doors[d].colour} key")))
        if d != door_goal:
            subgoals.append(("door", d))
    if kind in ("fetch", "put_next"):
        subgoals.append(("hold", target))
    subgoals.append(("final", -1))
    return replace(world, plan=tuple(action_text(c) for c in found), subgoals=tuple(subgoals))


def _cell_for_item(rng: random.Random, room: Room, width: int, taken: set[int]) -> int:
    options = [
        (room.top + y) * width + room.left + x
        for y in range(room.height)
        for x in range(room.width)
        if (room.top + y) * width + room.left + x not in taken
    ]
    if not options:
        return -1
    pos = rng.choice(options)
    taken.add(pos)
    return pos
