"""``house-v1``: an ALFWorld-like household (ALFWorld, Shridhar et al., ICLR 2021).

A generated house of numbered receptacles ("cabinet 2", "fridge 1"), some
closed until opened, holding numbered objects. The six task types are
ALFWorld's: pick-and-place, clean (with the sink), heat (microwave), cool
(fridge), examine in light (hold the object by a lamp and switch it on) and
pick-two. Actions and observations follow ALFWorld's text ("You arrive at
cabinet 2. The cabinet 2 is closed."); the agent carries one object at a time.

Deviations from ALFWorld:

- no physical simulator: the house is a procedural world (``_house_world``),
  generated per seed at three difficulties and with a held-out split whose
  object, receptacle, appliance and lamp words and instruction templates are
  never used in train/test;
- an impossible action gets feedback saying why ("You are not at cabinet 2;
  go to it first.") instead of ALFWorld's "Nothing happens.";
- ``use`` toggles a lamp (on and off); examine-in-light is judged on the
  state (holding the object at a lit lamp of the named kind);
- the instruction never contains an action string (no "look at ..."), so
  the verb-renaming perturbation cannot rewrite it.

Subgoals for ``progress()`` are per task type (``SUBGOALS``): found the
target kind, took it, changed its state or brought it to the lamp, placed
it; they count once reached. ``make_task`` accepts these params (capacity knobs for
small models, see docs/environments.md; the defaults are ALFWorld's setting):

- ``task_type``: ``pick``, ``clean``, ``heat``, ``cool``, ``examine`` or ``pick_two``;
- ``contents_visible`` (default false): the room view (the first observation and
  ``look`` from the middle of the room) also says what every open receptacle holds —
  the same house, fully observable except inside closed receptacles;
- ``target_hint`` (default false): the first observation also says where each target
  starts ("The candle 1 is on the shelf 1."), as in the pre-project experiment that a
  3M-parameter model learnt to 100%; the same house;
- ``objects`` (5..48, default all): only the first N object kinds of the vocabulary
  (round-robin over its categories, so every task type keeps a target) appear, as
  targets, look-alikes and fillers — a smaller world for a model that cannot yet copy
  among 48 words. A different house from the same seed without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import JsonValue

from palaestra.env._core import (
    Difficulty,
    Environment,
    Observation,
    ResetNeeded,
    Split,
    StateSnapshotMixin,
    Task,
)
from palaestra.env.families._house_world import (
    STATE_OF_ROLE,
    TRAIN,
    HouseState,
    Role,
    Vocab,
    check_params,
    generate,
)

#: The object and receptacle kinds of train and test tasks (held-out tasks use others).
TRAIN_VOCAB: Vocab = TRAIN

_NAME = re.compile(r"([a-z]+) (\d+)")
_VERB: dict[str, Role] = {"clean": "clean", "heat": "heat", "cool": "cool"}
Kind = Literal["receptacle", "object", "thing"]


def _list(names: list[str]) -> str:
    """ALFWorld's enumeration: "a apple 1, a knife 2, and a mug 1" (its article kept as is)."""
    items = [f"a {n}" for n in names]
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


class HouseEnv(StateSnapshotMixin, Environment):
    description = (
        "An ALFWorld-like household. Walk between numbered receptacles (countertops, "
        "cabinets, a fridge, a microwave, a sink...), open closed ones, pick up objects one "
        "at a time and put them elsewhere, clean, heat or cool them with the right appliance, "
        "or switch on a lamp to examine something. Tasks: pick-and-place, clean, heat, cool, "
        "examine in light and pick-two, from small open rooms to large houses with hidden "
        "targets and look-alike distractors."
    )
    action_help = (
        "go to X | open X | close X | take A from B | put A in/on B | clean A with B | "
        "heat A with B | cool A with B | use X | examine X | inventory | look "
        "(X, A and B are names with their number, exactly as you see them)"
    )
    action_verbs = (
        "go to",
        "open",
        "close",
        "take",
        "put",
        "clean",
        "heat",
        "cool",
        "use",
        "examine",
        "inventory",
        "look",
    )

    env_id = "house-v1"

    def __init__(self) -> None:
        super().__init__("house-v1")
        self.state: HouseState | None = None

    # ---- tasks ----------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        check_params(params)
        start = generate(self.env_id, split, difficulty, seed, params)
        return self._new_task(seed, split, difficulty, params, start.layout.instruction)

    def _reset(self, task: Task) -> str:
        self.state = generate(task.env_id, task.split, task.difficulty, task.seed, task.params)
        s = self.state
        if s.layout.contents_visible:
            s.seen.update(r for r in s.layout.receptacles if self._is_open(r))
        room = self._room()
        if s.layout.target_hint:
            s.told = {o: r for o, r in s.where.items() if o in s.layout.targets and r is not None}
            room += "".join(
                f" The {o} is {s.layout.rkind[r].prep} the {r}." for o, r in s.told.items()
            )
        return f"{room}\n\nYour task is to: {task.instruction}\n\nActions: {self.action_help}"

    @property
    def _s(self) -> HouseState:
        if self.state is None:
            raise ResetNeeded("call reset(task) first")
        return self.state

    # ---- what the agent sees ---------------------------------------------------

    def _room(self) -> str:
        recs = list(self._s.layout.receptacles)
        text = f"You are in the middle of a room. Glancing around you, you see {_list(recs)}."
        if self._s.layout.contents_visible:
            shown = [self._view(r) for r in recs if self._is_open(r) and self._s.contents[r]]
            text += "".join(" " + v for v in shown)
        return text

    def _is_open(self, rec: str) -> bool:
        s = self._s
        return not s.layout.rkind[rec].openable or rec in s.opened

    def _view(self, rec: str) -> str:
        s = self._s
        kind = s.layout.rkind[rec]
        if kind.openable:
            if rec not in s.opened:
                return f"The {rec} is closed."
            return f"The {rec} is open. In it, you see {_list(s.contents[rec])}."
        return f"{kind.prep.capitalize()} the {rec}, you see {_list(s.contents[rec])}."

    def _visible(self) -> list[str]:
        s = self._s
        if s.loc is None or not self._is_open(s.loc):
            return []
        return s.contents[s.loc]

    def _describe(self, obj: str) -> str:
        s = self._s
        if s.layout.okind[obj].lamp:
            return f"The {obj} is turned {'on' if obj in s.lamps_on else 'off'}."
        adjectives = [a for a in ("clean", "hot", "cool") if a in s.states[obj]]
        if adjectives:
            return f"This is a {', '.join(adjectives)} {obj}."
        return f"There's nothing special about {obj}."

    # ---- parsing ------------------------------------------------------------------

    def _resolve(self, raw: str, want: Kind) -> str | Observation:
        """The canonical name ``raw`` refers to, or the rejection explaining why not."""
        lay = self._s.layout
        if not _NAME.fullmatch(raw):
            numbered = [r for r in lay.receptacles if r.rsplit(" ", 1)[0] == raw]
            if numbered:
                return self.reject(
                    f"Say which {raw} you mean, with its number: {', '.join(numbered)}.",
                    "malformed",
                )
            return self.reject(
                f"{raw[:40]!r} is not a name. Things are named with a word and a number, "
                f"e.g. '{lay.receptacles[0]}'. Valid actions look like: {self.action_help}",
                "malformed",
            )
        is_rec, is_obj = raw in lay.rkind, raw in lay.okind
        if want == "receptacle" and is_obj:
            return self.reject(f"The {raw} is an object, not a place or receptacle.")
        if want == "object" and is_rec:
            return self.reject(f"The {raw} is a receptacle, not an object you can carry.")
        if is_rec or is_obj:
            return raw
        if want == "receptacle" or raw.rsplit(" ", 1)[0] in {r.name for r in lay.rkind.values()}:
            return self.reject(
                f"There is no {raw} here. The receptacles are: {', '.join(lay.receptacles)}."
            )
        return self.reject(f"You don't see any {raw} here.")

    def _step(self, action: str) -> Observation:
        obs = self._act(action)
        s = self._s
        if s.loc is not None and self._is_open(s.loc):
            s.seen.add(s.loc)  # its contents are in this or an earlier observation
        return obs

    def _act(self, action: str) -> Observation:
        s = self._s
        text = action.lower().rstrip(".!").strip()
        verb, _, rest = text.partition(" ")
        if text in ("inventory", "i"):
            held = s.holding
            return self._ok(
                f"You are carrying: a {held}." if held else "You are not carrying anything."
            )
        if text in ("look", "l"):
            if s.loc is None:
                return self._ok(self._room())
            return self._ok(f"You are at {s.loc}. {self._view(s.loc)}")
        if text.startswith("go to "):
            return self._go(text[len("go to ") :])
        if verb in ("open", "close", "use", "examine") and rest:
            return {
                "open": self._open,
                "close": self._close_rec,
                "use": self._use,
                "examine": self._examine,
            }[verb](rest)
        if verb == "take" and rest:
            obj, sep, rec = rest.partition(" from ")
            if not sep:
                return self.reject(
                    f"Say where to take it from: 'take {rest[:40]} from <receptacle>'.",
                    "malformed",
                )
            return self._take(obj, rec)
        if verb == "put" and rest:
            m = re.fullmatch(r"(.+?) (?:in/on|in|on|into|onto) (.+)", rest)
            if m is None:
                return self.reject(
                    "Say where to put it: 'put <object> in/on <receptacle>'.",
                    "malformed",
                )
            return self._put(m.group(1), m.group(2))
        if verb in _VERB and rest:
            obj, sep, rec = rest.partition(" with ")
            if not sep:
                return self.reject(
                    f"Say what to {verb} it with: '{verb} <object> with <receptacle>'.",
                    "malformed",
                )
            return self._change(_VERB[verb], obj, rec)
        return self.reject(
            f"I don't understand {action[:60]!r}. Valid actions look like: {self.action_help}",
            "malformed",
        )

    def _not_at(self, rec: str) -> Observation:
        return self.reject(f"You are not at {rec}; go to it first ('go to {rec}').")

    # ---- actions ------------------------------------------------------------------

    def _go(self, raw: str) -> Observation:
        s = self._s
        rec = self._resolve(raw, "receptacle")
        if isinstance(rec, Observation):
            return rec
        if s.loc == rec:
            return self.reject(f"You are already at {rec}. {self._view(rec)}")
        s.loc = rec
        return self._ok(f"You arrive at {rec}. {self._view(rec)}")

    def _open(self, raw: str) -> Observation:
        s = self._s
        rec = self._resolve(raw, "receptacle")
        if isinstance(rec, Observation):
            return rec
        if not s.layout.rkind[rec].openable:
            return self.reject(f"The {rec} cannot be opened; it is always open.")
        if s.loc != rec:
            return self._not_at(rec)
        if rec in s.opened:
            return self.reject(f"The {rec} is already open.")
        s.opened.add(rec)
        return self._ok(f"You open the {rec}. {self._view(rec)}")

    def _close_rec(self, raw: str) -> Observation:
        s = self._s
        rec = self._resolve(raw, "receptacle")
        if isinstance(rec, Observation):
            return rec
        if not s.layout.rkind[rec].openable:
            return self.reject(f"The {rec} cannot be closed.")
        if s.loc != rec:
            return self._not_at(rec)
        if rec not in s.opened:
            return self.reject(f"The {rec} is already closed.")
        s.opened.discard(rec)
        return self._ok(f"You close the {rec}.")

    def _take(self, raw_obj: str, raw_rec: str) -> Observation:
        s = self._s
        obj = self._resolve(raw_obj, "object")
        if isinstance(obj, Observation):
            return obj
        rec = self._resolve(raw_rec, "receptacle")
        if isinstance(rec, Observation):
            return rec
        if s.loc != rec:
            return self._not_at(rec)
        if not self._is_open(rec):
            return self.reject(f"The {rec} is closed; open it first ('open {rec}').")
        if s.where.get(obj) != rec:
            prep = s.layout.rkind[rec].prep
            return self.reject(f"You don't see {obj} {prep} the {rec}. {self._view(rec)}")
        if s.layout.okind[obj].lamp:
            return self.reject(f"The {obj} cannot be picked up; try 'use {obj}' to switch it.")
        if s.holding is not None:
            return self.reject(
                f"You are already carrying the {s.holding}, and you can carry only one "
                f"object; put it down first (e.g. 'put {s.holding} "
                f"{s.layout.rkind[rec].prep} {rec}')."
            )
        s.contents[rec].remove(obj)
        s.where[obj] = None
        s.holding = obj
        return self._ok(f"You pick up the {obj} from the {rec}.")

    def _put(self, raw_obj: str, raw_rec: str) -> Observation:
        s = self._s
        obj = self._resolve(raw_obj, "object")
        if isinstance(obj, Observation):
            return obj
        rec = self._resolve(raw_rec, "receptacle")
        if isinstance(rec, Observation):
            return rec
        if s.holding != obj:
            have = f"you are carrying the {s.holding}" if s.holding else "your hands are empty"
            return self.reject(f"You are not carrying the {obj} ({have}).")
        if s.loc != rec:
            return self._not_at(rec)
        if not self._is_open(rec):
            return self.reject(f"The {rec} is closed; open it first ('open {rec}').")
        s.contents[rec].append(obj)
        s.where[obj] = rec
        s.holding = None
        return self._ok(f"You put the {obj} {s.layout.rkind[rec].prep} the {rec}.")

    def _change(self, role: Role, raw_obj: str, raw_rec: str) -> Observation:
        s = self._s
        obj = self._resolve(raw_obj, "object")
        if isinstance(obj, Observation):
            return obj
        rec = self._resolve(raw_rec, "receptacle")
        if isinstance(rec, Observation):
            return rec
        if s.layout.rkind[rec].role != role:
            where = s.layout.appliance.get(role)
            hint = f" Things are {role}ed with the {where}." if where else ""
            return self.reject(f"You cannot {role} anything with the {rec}.{hint}")
        if s.holding != obj:
            return self.reject(f"You need to be carrying the {obj} to {role} it; pick it up first.")
        if s.loc != rec:
            return self._not_at(rec)
        if not s.layout.okind[obj].affords(role):
            return self.reject(f"The {obj} cannot be {role}ed.")
        state = STATE_OF_ROLE[role]
        states = s.states[obj]
        states.add(state)
        # Heating and cooling undo each other; cleanliness stays.
        if state == "hot":
            states.discard("cool")
        elif state == "cool":
            states.discard("hot")
        return self._ok(f"You {role} the {obj} using the {rec}.")

    def _use(self, raw: str) -> Observation:
        s = self._s
        thing = self._resolve(raw, "thing")
        if isinstance(thing, Observation):
            return thing
        if thing in s.layout.rkind:
            role = s.layout.rkind[thing].role
            hint = f" Try '{role} <object> with {thing}' while carrying the object." if role else ""
            return self.reject(f"You cannot use the {thing} directly.{hint}")
        if not s.layout.okind[thing].lamp:
            return self.reject(
                f"You cannot use the {thing}; only lamps can be used (switched on/off)."
            )
        if thing not in self._visible():
            return self.reject(f"You don't see the {thing} here.")
        if thing in s.lamps_on:
            s.lamps_on.discard(thing)
            return self._ok(f"You turn off the {thing}.")
        s.lamps_on.add(thing)
        return self._ok(f"You turn on the {thing}.")

    def _examine(self, raw: str) -> Observation:
        s = self._s
        thing = self._resolve(raw, "thing")
        if isinstance(thing, Observation):
            return thing
        if thing in s.layout.rkind:
            if s.loc != thing:
                return self._not_at(thing)
            return self._ok(self._view(thing))
        if thing != s.holding and thing not in self._visible():
            return self.reject(f"You don't see the {thing} here.")
        return self._ok(self._describe(thing))

    # ---- goal and progress -----------------------------------------------------------

    def _solved(self) -> bool:
        s = self._s
        lay = s.layout
        if lay.task_type == "examine":
            return s.holding in lay.targets and any(
                s.loc == r and lamp in s.lamps_on for lamp, r in lay.lamp_rec.items()
            )
        if lay.task_type == "pick_two":
            return any(sum(1 for o in lay.targets if s.where[o] == r) >= 2 for r in lay.goal_recs)
        need = STATE_OF_ROLE[lay.role] if lay.role else None
        return any(
            s.where[o] in lay.goal_recs and (need is None or need in s.states[o])
            for o in lay.targets
        )

    def _ok(self, text: str) -> Observation:
        """A valid action happened: update subgoals and check for the goal."""
        s = self._s
        lay = s.layout
        flags = s.flags
        held_target = s.holding in lay.targets
        if held_target:
            flags.update(("find", "take"))
        elif s.loc is not None and any(o in lay.targets for o in self._visible()):
            flags.add("find")
        if lay.role and any(STATE_OF_ROLE[lay.role] in s.states[o] for o in lay.targets):
            flags.add(lay.role)
        if held_target and s.loc in lay.lamp_rec.values():
            flags.add("bring")
        if lay.task_type == "pick_two" and any(s.where[o] in lay.goal_recs for o in lay.targets):
            flags.add("place_one")
        if self._solved():
            s.solved = True
            flags.update(lay.subgoals)
            return Observation(
                text=f"{text} You have completed the task.",
                reward=1.0,
                terminated=True,
                info={"success": True},
            )
        return Observation(text=text)

    def progress(self) -> float:
        s = self.state
        if s is None:
            return 0.0
        return len(s.flags) / len(s.layout.subgoals)

    # ---- actions on offer and the oracle ----------------------------------------------

    def available_actions(self) -> list[str]:
        s = self.state
        if s is None:
            return []
        lay = s.layout
        acts = [f"go to {r}" for r in lay.receptacles if r != s.loc]
        held = s.holding
        if s.loc is not None:
            loc = s.loc
            kind = lay.rkind[loc]
            if kind.openable:
                acts.append(f"{'close' if loc in s.opened else 'open'} {loc}")
            visible = self._visible()
            for o in visible:
                if lay.okind[o].lamp:
                    acts.append(f"use {o}")
                elif held is None:
                    acts.append(f"take {o} from {loc}")
            if held is not None:
                if self._is_open(loc):
                    acts.append(f"put {held} {kind.prep} {loc}")
                if kind.role is not None and lay.okind[held].affords(kind.role):
                    acts.append(f"{kind.role} {held} with {loc}")
            acts.append(f"examine {loc}")
            acts.extend(f"examine {o}" for o in visible)
        if held is not None:
            acts.append(f"examine {held}")
        acts += ["inventory", "look"]
        return acts

    def expert(self) -> str:
        """The next action of a fair expert: it knows only what the agent has been shown.

        Object locations are learnt by looking (receptacles are explored in the order
        the room lists them, closed ones opened); receptacle and appliance names are in
        the room description. A policy that used hidden locations could not be imitated.
        """
        s = self._s
        lay = s.layout
        held = s.holding
        if held is not None and held not in lay.targets:
            return self._drop(s)
        if lay.task_type == "examine":
            lamps = sorted(
                (lamp for lamp in lay.lamp_rec if lay.lamp_rec[lamp] in s.seen),
                key=lambda lamp: lamp not in s.lamps_on,
            )
            if not lamps:
                return self._fetch(s, lambda o, at: 0) if held is None else self._explore(s)
            lamp = lamps[0]
            rec = lay.lamp_rec[lamp]
            if held is None:
                return self._fetch(s, lambda o, at: (at != rec) + (lamp not in s.lamps_on))
            if s.loc != rec:
                return f"go to {rec}"
            return f"use {lamp}"
        if lay.task_type == "pick_two":
            known = self._known(s)
            dest = min(
                lay.goal_recs,
                key=lambda r: (
                    -sum(known.get(o) == r for o in lay.targets),
                    self._put_cost(s, r, None),
                ),
            )
            if held is None:
                return self._fetch(
                    s, lambda o, at: self._put_cost(s, dest, at), skip=lambda o: s.where[o] == dest
                )
            return self._deliver(s, held, dest)
        if held is None:
            return self._fetch(s, lambda o, at: self._finish_cost(s, o, at))
        role = lay.role
        if role is not None and STATE_OF_ROLE[role] not in s.states[held]:
            app = lay.appliance[role]
            return f"go to {app}" if s.loc != app else f"{role} {held} with {app}"
        dest = min(lay.goal_recs, key=lambda r: self._put_cost(s, r, s.loc))
        return self._deliver(s, held, dest)

    def _known(self, s: HouseState) -> dict[str, str]:
        """Objects the agent has been shown or told of (``target_hint``), and where they are."""
        known = {o: r for o, r in s.where.items() if r is not None and r in s.seen}
        known.update({o: r for o, r in s.told.items() if s.where[o] == r})
        return known

    def _explore(self, s: HouseState) -> str:
        """Look into the next receptacle not yet seen, in the order the room lists them."""
        if s.loc is not None and s.loc not in s.seen:
            return f"open {s.loc}"  # here and unseen: it is closed
        for rec in s.layout.receptacles:
            if rec not in s.seen:
                return f"go to {rec}"
        raise AssertionError("every receptacle seen and no target found")

    def _put_cost(self, s: HouseState, rec: str, at: str | None) -> int:
        return (at != rec) + (not self._is_open(rec)) + 1

    def _finish_cost(self, s: HouseState, obj: str, at: str | None) -> int:
        lay = s.layout
        cost = 0
        if lay.role is not None and STATE_OF_ROLE[lay.role] not in s.states[obj]:
            app = lay.appliance[lay.role]
            cost += (at != app) + 1
            at = app
        return cost + min(self._put_cost(s, r, at) for r in lay.goal_recs)

    def _fetch(
        self,
        s: HouseState,
        after: Callable[[str, str], int],
        skip: Callable[[str], bool] | None = None,
    ) -> str:
        """Go for the known target that finishes the task soonest (``after(o, rec)`` prices
        the rest); explore while none is known."""
        known = self._known(s)
        best: tuple[int, str] | None = None
        for o in s.layout.targets:
            rec = known.get(o)
            if rec is None or (skip is not None and skip(o)):
                continue
            cost = (s.loc != rec) + (not self._is_open(rec)) + 1 + after(o, rec)
            if best is None or cost < best[0]:
                best = (cost, o)
        if best is None:
            return self._explore(s)
        obj = best[1]
        rec = known[obj]
        if s.loc != rec:
            return f"go to {rec}"
        if not self._is_open(rec):
            return f"open {rec}"
        return f"take {obj} from {rec}"

    def _deliver(self, s: HouseState, obj: str, rec: str) -> str:
        if s.loc != rec:
            return f"go to {rec}"
        if not self._is_open(rec):
            return f"open {rec}"
        return f"put {obj} {s.layout.rkind[rec].prep} {rec}"

    def _drop(self, s: HouseState) -> str:
        """Put the wrong object down right here (any receptacle takes anything)."""
        assert s.holding is not None
        rec = s.loc if s.loc is not None else s.layout.receptacles[0]
        return self._deliver(s, s.holding, rec)
