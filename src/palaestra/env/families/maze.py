"""``maze-v1``: a partially observable text grid world of rooms, doors, keys and objects.

Follows BabyAI / MiniGrid ("BabyAI: A Platform to Study the Sample Efficiency
of Grounded Language Learning", Chevalier-Boisvert et al., ICLR 2019): a grid
of rooms joined by coloured doors, some locked, with the key of the matching
colour somewhere; coloured objects; one carried object at a time; a
language instruction such as "open the red door", "pick up the blue key and
go to the goal square" or "put the green ball next to the red cone"; reward
1.0 when the goal is met, which ends the episode (as BabyAI's instruction
verifier does, without a ``done`` action).

Where it deviates from BabyAI, and why:

- Text, not pixels. The agent sees the room it stands in (both rooms from a
  doorway), not a 7x7 egocentric patch: for each compass direction the first
  wall, door or object and how far it is, and every object, door and goal
  square of the room with its offset ("2 steps south and 1 step west").
  Other rooms stay unseen until entered, so the map must be remembered.
- Absolute directions (``go north``) instead of turn left / turn right /
  forward: a facing direction is hidden state a text agent easily loses.
- Interactions name their object and act on any of the four cells next to
  the agent (``pick up blue key``, ``open red door``) instead of the cell in
  front; ``drop`` names the direction. Objects block movement, as in MiniGrid.
- ``unlock <colour> door`` (carrying the key) opens a locked door; plain
  ``open`` opens a closed one. Doors never close again.
- The reward is 1.0 on success, not MiniGrid's ``1 - 0.9 * steps / max``, so
  that success and reward 1 coincide; speed shows in episode length.

Difficulty: easy is one room (6–8 cells a side) with everything in sight
and 3–5 distractors; medium is 2–3 rooms in a row or column with one locked
door between the start and the goal; hard is 4–6 rooms (sometimes with a
loop), two locked doors whose keys must be fetched in order, 3–5
distractors and plans of 14–80 actions (the registered step limit is 100).
Goals: ``go_to`` an object (end next to it), ``pick_up`` it, ``put_next``
(put it next to another), ``fetch`` (pick it up, then stand on the goal
square), and on medium and hard also ``reach`` (the goal square) and
``open`` (the locked door). The heldout split uses other colours (purple,
grey, orange, pink, brown, cyan), other objects (boxes and stars instead of
balls and cones), an "exit tile" for the goal square and other instruction
templates (see ``_maze_gen.py``).

``Task.params`` accepts ``goal`` (a goal kind, any but ``open`` on easy),
``distractors`` (0–6) and ``room_size`` (cells a side; 4–9 easy, 3–6
medium, 3–5 hard); anything else is a ``ValueError``.

Progress (AgentBoard's progress rate) counts the subgoals of the
generator's solution that are met: each needed key held, each needed door
unlocked, the object held (fetch, put_next), and the goal itself. The
expert is the planner of ``_maze_world.py`` run from the current state with
full knowledge of the map; its plan is cached by state, so following it
costs one search per episode.

Modules: ``_maze_world.py`` (world model, rules, planner), ``_maze_gen.py``
(vocabularies, generator), this file (parsing, text, the contract).
"""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import JsonValue

from palaestra.env._core import (
    DIFFICULTIES,
    SPLITS,
    Difficulty,
    Environment,
    Observation,
    ResetNeeded,
    Split,
    StateSnapshotMixin,
    Task,
)
from palaestra.env.families._maze_gen import generate, validate_params
from palaestra.env.families._maze_world import (
    DIRS,
    DOOR,
    DOOR_STATES,
    LOCKED,
    OPEN,
    WALL,
    Cmd,
    Fail,
    MazeState,
    World,
    act,
    action_text,
    drop_blocker,
    initial_state,
    plan,
)

_DIR_WORDS = {"north": 0, "n": 0, "south": 1, "s": 1, "east": 2, "e": 2, "west": 3, "w": 3}
_REMINDER = (
    "Actions: go <north|south|east|west>; pick up <colour> <object>; "
    "drop <colour> <object> <direction>; open <colour> door; unlock <colour> door "
    "(while carrying its key). You act on things in the four cells around you "
    "and carry one thing at a time."
)


def _steps(n: int, direction: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {direction}"


class MazeEnv(StateSnapshotMixin, Environment):
    description = (
        "A BabyAI-style grid world in text: rooms joined by coloured doors, some locked, keys "
        "and coloured objects. The agent sees only the room it is in, moves one cell at a time "
        "in compass directions, carries one object, and must meet an instruction such as "
        "'open the red door', 'pick up the blue ball and go to the goal square' or 'put the "
        "green cone next to the yellow ball'. Harder levels add rooms, locked doors whose keys "
        "must be fetched in order, and distractors."
    )
    action_help = (
        "go <north|south|east|west> | pick up <colour> <object> | "
        "drop <colour> <object> <north|south|east|west> | open <colour> door | "
        "unlock <colour> door"
    )
    action_verbs: ClassVar[tuple[str, ...]] = ("go", "pick up", "drop", "open", "unlock")

    def __init__(self, env_id: str = "maze-v1") -> None:
        super().__init__(env_id)
        self.state: MazeState | None = None
        # The expert's plan as state key -> action; valid for one world.
        self._plan_world: World | None = None
        self._plan: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}

    # ---- tasks ------------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        if split not in SPLITS or difficulty not in DIFFICULTIES:
            raise ValueError(
                f"split must be one of {list(SPLITS)} and difficulty one of {list(DIFFICULTIES)}, "
                f"got {split!r} and {difficulty!r}"
            )
        validate_params(difficulty, dict(params))
        world = self._world(seed, split, difficulty, dict(params))
        return self._new_task(seed, split, difficulty, params, world.instruction)

    def _world(self, seed: int, split: str, difficulty: str, params: dict[str, JsonValue]) -> World:
        key = f"{self.env_id}:{split}:{difficulty}:{seed}:{sorted(params.items())}"
        return generate(key, split, difficulty, json.dumps(params, sort_keys=True))

    def _st(self) -> MazeState:
        if self.state is None:
            raise ResetNeeded("call reset(task) first")
        return self.state

    # ---- the contract ----------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        world = self._world(task.seed, task.split, task.difficulty, dict(task.params))
        self.state = initial_state(world)
        rows, cols = world.layout
        if rows * cols == 1:
            layout = "The map is a single room."
        else:
            layout = (
                f"The map has {rows * cols} rooms in {rows} row{'s' if rows > 1 else ''} "
                f"of {cols}, joined by doors; you see only the room you are in."
            )
        return f"{world.instruction}\n{layout}\n{self._view()}\n{_REMINDER}"

    def _step(self, action: str) -> Observation:
        st = self._st()
        cmd = _parse(action)
        if isinstance(cmd, str):
            return self.reject(cmd, "malformed")
        w = st.world
        held = st.carrying
        fail = act(st, cmd)
        if fail is not None:
            return self.reject(self._explain(fail, cmd), "invalid_action")
        if cmd.verb == "go":
            result = f"You go {DIRS[cmd.direction]}."
        elif cmd.verb == "pick up":
            result = f"You pick up the {cmd.name}."
        elif cmd.verb == "drop":
            k = w.deltas.index(st.items[held] - st.agent)
            result = f"You drop the {w.items[held].name} to the {DIRS[k]}."
        elif cmd.verb == "open":
            result = f"You open the {cmd.name} door."
        else:
            result = f"You unlock the {cmd.name} door with the {cmd.name} key; it swings open."
        if st.solved:
            return Observation(
                text=f"{result} You have completed the mission: {w.instruction}",
                reward=1.0,
                terminated=True,
                info={"success": True},
            )
        return Observation(text=f"{result}\n{self._view()}")

    def available_actions(self) -> list[str]:
        if self.state is None:
            return []
        st, w = self.state, self.state.world
        moves: list[str] = []
        takes: list[str] = []
        drops: list[str] = []
        doors: list[str] = []
        for k, delta in enumerate(w.deltas):
            q = st.agent + delta
            cell = w.cells[q]
            item = next((i for i, p in enumerate(st.items) if p == q), -1)
            if cell == DOOR:
                d = w.door_at[q]
                colour = w.doors[d].colour
                if st.doors[d] == OPEN:
                    moves.append(f"go {DIRS[k]}")
                elif st.doors[d] == LOCKED:
                    if st.carrying >= 0 and w.items[st.carrying].name == f"{colour} key":
                        doors.append(f"unlock {colour} door")
                else:
                    doors.append(f"open {colour} door")
            elif cell != WALL and item < 0:
                moves.append(f"go {DIRS[k]}")
            if item >= 0 and st.carrying < 0:
                takes.append(f"pick up {w.items[item].name}")
            if st.carrying >= 0 and drop_blocker(st, q) is None:
                drops.append(f"drop {w.items[st.carrying].name} {DIRS[k]}")
        return moves + takes + drops + doors

    def progress(self) -> float:
        st = self._st()
        if st.solved:
            return 1.0
        subgoals = st.world.subgoals
        met = 0
        for kind, x in subgoals:
            if kind in ("key", "hold"):
                met += (st.held_ever >> x) & 1
            elif kind == "door":
                met += st.doors[x] == OPEN
        return met / len(subgoals)

    def expert(self) -> str:
        st = self._st()
        key = st.key()
        if self._plan_world is not st.world or key not in self._plan:
            self._plan_world, self._plan = st.world, {}
            sim = MazeState(st.world, st.agent, st.carrying, list(st.items), list(st.doors))
            for cmd in plan(st) or ():
                self._plan[sim.key()] = action_text(cmd)
                act(sim, cmd)
        if key in self._plan:
            return self._plan[key]
        # Unreachable in practice (the tests check it): keep the episode going.
        return (self.available_actions() or ["go north"])[0]  # pragma: no cover

    # ---- text --------------------------------------------------------------------------

    def _thing(self, pos: int) -> str:
        """How the object, door or goal square at ``pos`` is named in a view."""
        st, w = self._st(), self._st().world
        if w.cells[pos] == DOOR:
            d = w.door_at[pos]
            return f"the {w.doors[d].colour} door ({DOOR_STATES[st.doors[d]]})"
        if pos == w.goal_square:
            return f"the {w.goal_noun}"
        return f"the {w.items[st.items.index(pos)].name}"

    def _offset(self, pos: int) -> str:
        st, w = self._st(), self._st().world
        dr = pos // w.width - st.agent // w.width
        dc = pos % w.width - st.agent % w.width
        parts = []
        if dr:
            parts.append(_steps(abs(dr), "south" if dr > 0 else "north"))
        if dc:
            parts.append(_steps(abs(dc), "east" if dc > 0 else "west"))
        text = " and ".join(parts) or "here"
        return text + (" (next to you)" if abs(dr) + abs(dc) == 1 else "")

    def _view(self) -> str:
        """What the agent sees: where it is, the four directions, and the room's contents."""
        st = self._st()
        w = st.world
        if w.cells[st.agent] == DOOR:
            door = w.doors[w.door_at[st.agent]]
            rooms = door.rooms
            a, b = (w.rooms[r].name for r in rooms)
            where = (
                f"You stand in the doorway of the {door.colour} door, between the {a} and the {b}."
            )
        else:
            rooms = (w.room_of[st.agent],)
            room = w.rooms[rooms[0]]
            where = (
                f"You are in the {room.name} ({room.width} cells east-west, "
                f"{room.height} north-south)."
            )
        carry = (
            f"You carry the {w.items[st.carrying].name}."
            if st.carrying >= 0
            else "Your hands are empty."
        )
        rays: list[str] = []
        for k, delta in enumerate(w.deltas):
            n, q = 1, st.agent + delta
            while w.cells[q] != WALL and w.cells[q] != DOOR and q not in st.items:
                n, q = n + 1, q + delta
            thing = "a wall" if w.cells[q] == WALL else self._thing(q)
            far = "next to you" if n == 1 else f"{n} steps away"
            rays.append(f"{DIRS[k].capitalize()}: {thing}, {far}.")
        seen: list[tuple[int, str]] = []
        for pos in st.items:
            if pos >= 0 and w.room_of[pos] in rooms:
                seen.append((pos, self._thing(pos)))
        if w.goal_square >= 0 and w.room_of[w.goal_square] in rooms:
            seen.append((w.goal_square, self._thing(w.goal_square)))
        for door in w.doors:
            if door.pos != st.agent and set(door.rooms) & set(rooms):
                seen.append((door.pos, self._thing(door.pos)))

        def dist(entry: tuple[int, str]) -> tuple[int, str]:
            pos = entry[0]
            dr = abs(pos // w.width - st.agent // w.width)
            return (dr + abs(pos % w.width - st.agent % w.width), entry[1])

        listed = "; ".join(f"{name} {self._offset(pos)}" for pos, name in sorted(seen, key=dist))
        contents = f"You see {listed}." if listed else "The room is empty."
        return f"{where} {carry}\n{' '.join(rays)}\n{contents}"

    def _explain(self, fail: Fail, cmd: Cmd) -> str:
        """Feedback for an impossible action (the state is unchanged)."""
        st = self._st()
        w = st.world
        way = DIRS[fail.direction] if fail.direction >= 0 else ""
        colour = w.doors[fail.door].colour if fail.door >= 0 else cmd.name
        held = w.items[st.carrying].name if st.carrying >= 0 else ""
        code = fail.code
        if code == "wall":
            return f"There is a wall to the {way}."
        if code == "door_closed":
            return f"The {colour} door to the {way} is closed. Open it first: 'open {colour} door'."
        if code == "door_locked":
            return (
                f"The {colour} door to the {way} is locked. Unlock it while carrying the "
                f"{colour} key: 'unlock {colour} door'."
            )
        if code == "blocked":
            return (
                f"The {w.items[fail.item].name} blocks the way {way}. Walk around it or pick it up."
            )
        if code == "hands_full":
            free = [k for k in range(4) if drop_blocker(st, st.agent + w.deltas[k]) is None]
            hint = f", e.g. 'drop {held} {DIRS[free[0]]}'" if free else " somewhere else"
            return f"Your hands are full: you carry the {held}. Drop it first{hint}."
        if code == "not_adjacent":
            if fail.item >= 0 and fail.item == st.carrying:
                return f"You are already carrying the {cmd.name}."
            where = ""
            if fail.item >= 0 and w.room_of[st.items[fail.item]] in self._rooms_in_view():
                where = f" It is {self._offset(st.items[fail.item])}; walk next to it first."
            return f"There is no {cmd.name} next to you.{where}"
        if code == "not_carrying":
            having = f"You carry the {held}." if held else "Your hands are empty."
            return f"You are not carrying a {cmd.name}. {having}"
        if code == "no_room":
            return f"There is no free cell around you to drop the {held}."
        if code.startswith("drop_"):
            what = {
                "drop_wall": "there is a wall",
                "drop_door": f"that is the doorway of the {colour} door",
                "drop_goal": f"that is the {w.goal_noun}, which must stay clear",
                "drop_item": f"the {w.items[fail.item].name} is there"
                if fail.item >= 0
                else "it is taken",
            }[code]
            return f"You cannot drop the {held} to the {way}: {what}."
        if code == "no_door":
            where = ""
            if fail.door >= 0 and set(w.doors[fail.door].rooms) & set(self._rooms_in_view()):
                where = f" It is {self._offset(w.doors[fail.door].pos)}; walk next to it first."
            return f"There is no {cmd.name} door next to you.{where}"
        if code == "already_open":
            return f"The {colour} door is already open."
        if code == "open_locked":
            if held == f"{colour} key":
                return f"The {colour} door is locked. Unlock it: 'unlock {colour} door'."
            return f"The {colour} door is locked. You need to carry the {colour} key to unlock it."
        if code == "not_locked":
            return f"The {colour} door is not locked; open it with 'open {colour} door'."
        return f"You need to carry the {colour} key to unlock the {colour} door."  # no_key

    def _rooms_in_view(self) -> tuple[int, ...]:
        st = self._st()
        w = st.world
        if w.cells[st.agent] == DOOR:
            return w.doors[w.door_at[st.agent]].rooms
        return (w.room_of[st.agent],)


def _parse(action: str) -> Cmd | str:
    """The command an action string means, or the feedback for a malformed one."""
    words = [t for t in action.lower().strip(" .!").split() if t not in ("the", "a", "an")]
    shown = action if len(action) <= 60 else action[:57] + "..."
    unknown = f"I don't understand {shown!r}. Valid actions look like: {MazeEnv.action_help}"
    if not words:
        return unknown
    verb, rest = words[0], words[1:]
    if verb == "go":
        if len(rest) == 1 and rest[0] in _DIR_WORDS:
            return Cmd("go", direction=_DIR_WORDS[rest[0]])
        return "Say which way to go: 'go north', 'go south', 'go east' or 'go west'."
    if verb == "pick" and rest[:1] == ["up"]:
        if len(rest) == 3:
            return Cmd("pick up", f"{rest[1]} {rest[2]}")
        return "Name what to pick up by colour and kind, e.g. 'pick up blue key'."
    if verb == "drop":
        direction = -1
        if rest and rest[-1] in _DIR_WORDS:
            direction = _DIR_WORDS[rest.pop()]
        rest = [t for t in rest if t != "to"]  # "drop blue key to the north"
        if len(rest) == 2:
            return Cmd("drop", f"{rest[0]} {rest[1]}", direction)
        return "Name what to drop and where, e.g. 'drop blue key north'."
    if verb in ("open", "unlock"):
        if "door" in rest:  # "unlock red door with red key" is fine too
            rest = rest[: rest.index("door")]
        if len(rest) == 1:
            return Cmd("open", rest[0]) if verb == "open" else Cmd("unlock", rest[0])
        return f"Name the door by its colour, e.g. '{verb} red door'."
    return unknown
