"""The world of ``house-v1``: vocabularies, the episode state and the house generator.

Kinds of objects and receptacles follow ALFWorld (Shridhar et al., "ALFWorld:
Aligning Text and Embodied Environments for Interactive Learning", ICLR
2021): single-token names ("sinkbasin", "alarmclock"), numbered instances
("cabinet 2"), affordances per object kind (which kinds can be cleaned,
heated, cooled), lamps as fixed objects that are switched with ``use``.

The held-out split has its own object, receptacle, appliance and lamp
vocabularies (``HELDOUT``) and its own instruction templates; nothing in it is
shared with ``TRAIN``, which the train and test splits both draw from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import JsonValue

TaskType = Literal["pick", "clean", "heat", "cool", "examine", "pick_two"]
TASK_TYPES: tuple[TaskType, ...] = ("pick", "clean", "heat", "cool", "examine", "pick_two")
Role = Literal["clean", "heat", "cool"]

#: What each state-changing task needs: the appliance role and the object state it leaves.
ROLE_OF: dict[TaskType, Role] = {"clean": "clean", "heat": "heat", "cool": "cool"}
STATE_OF_ROLE: dict[Role, str] = {"clean": "clean", "heat": "hot", "cool": "cool"}

SUBGOALS: dict[TaskType, tuple[str, ...]] = {
    "pick": ("find", "take", "place"),
    "clean": ("find", "take", "clean", "place"),
    "heat": ("find", "take", "heat", "place"),
    "cool": ("find", "take", "cool", "place"),
    "examine": ("find", "take", "bring", "light"),
    "pick_two": ("find", "take", "place_one", "place_two"),
}


@dataclass(frozen=True)
class ObjKind:
    """A kind of object ("apple") and what can be done to it."""

    name: str
    category: str
    clean: bool = False
    heat: bool = False
    cool: bool = False
    lamp: bool = False
    similar: tuple[str, ...] = ()

    def affords(self, role: Role) -> bool:
        return {"clean": self.clean, "heat": self.heat, "cool": self.cool}[role]


@dataclass(frozen=True)
class RecKind:
    """A kind of receptacle ("cabinet"): preposition, openability, what it holds."""

    name: str
    prep: Literal["in", "on"]
    openable: bool
    max_count: int
    lamp_host: bool
    role: Role | None
    accepts: frozenset[str]


@dataclass(frozen=True)
class Vocab:
    objects: dict[str, ObjKind]
    receptacles: dict[str, RecKind]
    lamps: tuple[str, ...]
    templates: dict[TaskType, tuple[str, ...]]


def _objects(spec: str) -> dict[str, ObjKind]:
    # One kind per line: name, category, affordances (c=clean h=heat k=cool, - none), similar kinds.
    out: dict[str, ObjKind] = {}
    for line in spec.strip().splitlines():
        name, cat, aff, *similar = line.split()
        out[name] = ObjKind(
            name, cat, "c" in aff, "h" in aff, "k" in aff, similar=tuple(similar[0].split(","))
        )
    return out


_ROLES: dict[str, Role | None] = {"-": None, "clean": "clean", "heat": "heat", "cool": "cool"}


def _receptacles(spec: str) -> dict[str, RecKind]:
    # One kind per line: name, preposition, o=openable, max instances, L=lamp host, role, accepts.
    out: dict[str, RecKind] = {}
    for line in spec.strip().splitlines():
        name, prep, opn, n, lamp, role, acc = line.split()
        out[name] = RecKind(
            name=name,
            prep="in" if prep == "in" else "on",
            openable=opn == "o",
            max_count=int(n),
            lamp_host=lamp == "L",
            role=_ROLES[role],
            accepts=frozenset(acc.split(",")),
        )
    return out


def _lamps(*names: str) -> dict[str, ObjKind]:
    return {n: ObjKind(n, "lamp", lamp=True) for n in names}


TRAIN = Vocab(
    objects=_objects("""
apple food chk tomato,potato
tomato food chk apple,potato
potato food chk apple,tomato
egg food chk potato
lettuce food ck tomato
bread food hk egg
mug kitchen chk cup
cup kitchen chk mug
bowl kitchen ck plate
plate kitchen chk bowl
pan kitchen ck pot
pot kitchen ck pan,kettle
kettle kitchen c pot
knife kitchen c butterknife
butterknife kitchen c knife
fork kitchen c spoon
spoon kitchen c fork,ladle
ladle kitchen c spoon,spatula
spatula kitchen c ladle
winebottle kitchen k glassbottle
glassbottle kitchen k winebottle
saltshaker kitchen - peppershaker
peppershaker kitchen - saltshaker
dishsponge kitchen c soapbar
book small - newspaper,laptop
newspaper small - book
pen small - pencil
pencil small - pen
cellphone small - remotecontrol
remotecontrol small - cellphone
creditcard small - keychain,cd
keychain small - creditcard
cd small - creditcard
alarmclock small - watch
watch small - alarmclock
laptop small - book
pillow small - towel
soapbar bath c soapbottle,dishsponge
soapbottle bath - soapbar,spraybottle
spraybottle bath - soapbottle
cloth bath c towel
towel bath - cloth
toiletpaper bath - tissuebox
tissuebox bath - toiletpaper
vase decor - statue
statue decor - vase
candle decor - vase
box decor - tissuebox
""")
    | _lamps("desklamp", "floorlamp"),
    receptacles=_receptacles("""
countertop on - 2 - - food,kitchen,small,bath,decor
cabinet in o 6 - - kitchen,bath,small,decor,food
drawer in o 5 - - small,kitchen,bath
shelf on - 3 L - small,decor,kitchen,bath
desk on - 1 L - small,decor
sidetable on - 2 L - small,decor,food,kitchen
diningtable on - 1 - - food,kitchen,small,decor
coffeetable on - 1 - - small,decor,food,kitchen
dresser on - 1 L - small,decor,bath
bed on - 1 - - small
sofa on - 1 - - small
armchair on - 1 - - small
garbagecan in - 1 - - food,small,kitchen,bath
safe in o 1 - - small
cart on - 1 - - bath,small,kitchen
stoveburner on - 2 - - kitchen
sinkbasin in - 1 - clean kitchen,food,bath
microwave in o 1 - heat food,kitchen
fridge in o 1 - cool food,kitchen
"""),
    lamps=("desklamp", "floorlamp"),
    # ALFWorld's templates, minus "look at ... under the desklamp": an instruction
    # must not contain an action string ("look"), or verb renaming would rewrite it.
    templates={
        "pick": ("put a {o} {p} {r}.", "put some {o} {p} {r}."),
        "clean": ("put a clean {o} {p} {r}.", "clean some {o} and put it {p} {r}."),
        "heat": ("put a hot {o} {p} {r}.", "heat some {o} and put it {p} {r}."),
        "cool": ("put a cool {o} {p} {r}.", "cool some {o} and put it {p} {r}."),
        "examine": ("examine the {o} with the {l}.", "examine a {o} under the {l}."),
        "pick_two": ("put two {o} {p} {r}.", "find two {o} and put them {p} {r}."),
    },
)

HELDOUT = Vocab(
    objects=_objects("""
peach food chk plum,nectarine
plum food chk peach
nectarine food chk peach
onion food chk shallot
shallot food ck onion
carrot food ck parsnip
parsnip food ck carrot
muffin food hk bagel
bagel food hk muffin
teacup kitchen chk tumbler
tumbler kitchen chk teacup
saucer kitchen chk platter
platter kitchen ck saucer
skillet kitchen ck wok
wok kitchen ck skillet
cleaver kitchen c peeler
peeler kitchen c cleaver
whisk kitchen c tongs
tongs kitchen c whisk
teapot kitchen c jug
jug kitchen k teapot,carafe
carafe kitchen k jug
journal small - magazine
magazine small - journal
marker small - crayon
crayon small - marker
tablet small - calculator
calculator small - tablet
wallet small - purse
purse small - wallet
coin small - wallet
glasses small - goggles
goggles small - glasses
headphones small - earbuds
earbuds small - headphones
cushion small - blanket
blanket small - cushion
comb bath - hairbrush
hairbrush bath - comb
toothbrush bath c hairbrush
lotion bath - shampoo
shampoo bath - lotion
flannel bath c loofah
loofah bath c flannel
figurine decor - trophy,seashell
trophy decor - figurine
globe decor - hourglass
hourglass decor - globe
seashell decor - figurine
""")
    | _lamps("lantern", "torchiere"),
    receptacles=_receptacles("""
workbench on - 2 - - food,kitchen,small,bath,decor
cupboard in o 6 - - kitchen,bath,small,decor,food
locker in o 4 - - small,bath,decor,kitchen
bookcase on - 3 L - small,decor
nightstand on - 2 L - small,decor,bath
bureau on - 1 L - small,decor,bath
console on - 1 L - small,decor,food,kitchen
windowsill on - 1 - - decor,small,food
ottoman on - 1 - - small
bench on - 1 - - small,decor
chest in o 1 - - small,decor,bath
hamper in - 1 - - bath,small
trolley on - 1 - - kitchen,food,bath,small
crate in o 1 - - food,kitchen,small
washbasin in - 1 - clean kitchen,food,bath
oven in o 1 - heat food,kitchen
freezer in o 1 - cool food,kitchen
"""),
    lamps=("lantern", "torchiere"),
    templates={
        "pick": (
            "move a {o} so that it ends up {p} the {r}.",
            "your job: get a {o} and leave it {p} the {r}.",
        ),
        "clean": (
            "wash a {o}, then leave it {p} the {r}.",
            "make a {o} spotless and set it {p} the {r}.",
        ),
        "heat": (
            "warm up a {o}, then leave it {p} the {r}.",
            "make a {o} warm and set it {p} the {r}.",
        ),
        "cool": (
            "chill a {o}, then leave it {p} the {r}.",
            "make a {o} cold and set it {p} the {r}.",
        ),
        "examine": (
            "inspect a {o} by the light of the {l}.",
            "hold a {o} up to the {l} while it is switched on.",
        ),
        "pick_two": (
            "gather a pair of {o} and leave both {p} the same {r}.",
            "bring two {o} together {p} one {r}.",
        ),
    },
)


@dataclass(frozen=True)
class Level:
    task_types: tuple[TaskType, ...]
    n_receptacles: tuple[int, int]
    n_fillers: tuple[int, int]
    n_similar: tuple[int, int]
    hidden_p: float  # probability that the targets start inside closed receptacles
    capacity: int  # most objects generated in one receptacle
    all_appliances: bool


LEVELS: dict[str, Level] = {
    "easy": Level(("pick", "examine"), (6, 8), (3, 5), (0, 0), 0.0, 3, False),
    "medium": Level(
        ("pick", "examine", "clean", "heat", "cool"), (10, 14), (7, 10), (1, 1), 0.5, 4, True
    ),
    "hard": Level(("clean", "heat", "cool", "pick_two"), (18, 24), (12, 16), (2, 4), 1.0, 4, True),
}


@dataclass(frozen=True, eq=False)
class Layout:
    """What does not change during an episode: the house, the goal, the instruction."""

    task_type: TaskType
    instruction: str
    receptacles: tuple[str, ...]
    rkind: dict[str, RecKind]  # receptacle name -> kind
    okind: dict[str, ObjKind]  # object name -> kind (lamps included)
    target_kind: str
    targets: tuple[str, ...]  # every object of the target kind
    goal_kind: str | None  # receptacle kind to put the targets in/on
    goal_recs: tuple[str, ...]
    lamp_kind: str | None  # examine tasks: the lamp to use
    lamp_rec: dict[str, str]  # lamp of lamp_kind -> the receptacle it stands on (lamps never move)
    role: Role | None  # clean/heat/cool tasks: the state change needed
    appliance: dict[str, str]  # role -> the receptacle that performs it (first instance)
    subgoals: tuple[str, ...]
    contents_visible: bool = False  # the room view also says what open receptacles hold
    target_hint: bool = False  # the first observation says where the targets are

    def __deepcopy__(self, memo: dict[int, Any]) -> Layout:
        return self  # immutable: snapshots share it


@dataclass
class HouseState:
    """Everything that changes during an episode (deep-copied by snapshots)."""

    layout: Layout
    loc: str | None  # None: the middle of the room, where episodes start
    holding: str | None
    where: dict[str, str | None]  # object -> receptacle (None while held)
    contents: dict[str, list[str]]
    opened: set[str] = field(default_factory=set[str])
    states: dict[str, set[str]] = field(
        default_factory=dict[str, set[str]]
    )  # object -> {clean, hot, cool}
    lamps_on: set[str] = field(default_factory=set[str])
    flags: set[str] = field(default_factory=set[str])
    solved: bool = False
    seen: set[str] = field(default_factory=set[str])  # receptacles whose contents were shown
    told: dict[str, str] = field(default_factory=dict[str, str])  # target -> where the hint put it


#: Generator params that only change what the agent is shown, never the house itself:
#: they stay out of the layout seed, so the same task seed gives the same house with or without.
VIEW_PARAMS = ("contents_visible", "target_hint")
PARAMS = ("task_type", "objects", *VIEW_PARAMS)
MIN_OBJECTS = 5  # one kind per category, so every task type has a candidate target


def check_params(params: dict[str, JsonValue]) -> None:
    """Reject unknown or ill-typed generator parameters (see ``PARAMS``)."""
    for name, value in params.items():
        if name in VIEW_PARAMS:
            if not isinstance(value, bool):
                raise ValueError(f"param {name!r} must be true or false, got {value!r}")
        elif name == "objects":
            n = len(object_kinds(TRAIN))
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"param 'objects' must be an integer, got {value!r}")
            if not MIN_OBJECTS <= value <= n:
                raise ValueError(
                    f"param 'objects' must be between {MIN_OBJECTS} and {n} "
                    f"(the object kinds of the vocabulary), got {value}"
                )
        elif name == "task_type":
            if value not in TASK_TYPES:
                raise ValueError(
                    f"param 'task_type' must be one of {list(TASK_TYPES)}, got {value!r}"
                )
        else:
            raise ValueError(
                f"house-v1 does not accept the param {name!r}; accepted: {list(PARAMS)}"
            )


def object_kinds(vocab: Vocab, n: int | None = None) -> list[ObjKind]:
    """The first ``n`` object kinds (lamps excluded), taken round-robin over the categories.

    Round-robin keeps every prefix varied: with ``n >= MIN_OBJECTS`` every category, hence
    every task type, has a kind. The order is fixed by the vocabulary listing (deterministic).
    ``n=None``: every kind in listing order (the houses of tasks without the param).
    """
    if n is None:
        return [k for k in vocab.objects.values() if not k.lamp]
    by_cat: dict[str, list[ObjKind]] = {}
    for k in vocab.objects.values():
        if not k.lamp:
            by_cat.setdefault(k.category, []).append(k)
    order: list[ObjKind] = []
    queues = list(by_cat.values())
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    return order[:n]


def generate(
    env_id: str, split: str, difficulty: str, seed: int, params: dict[str, JsonValue]
) -> HouseState:
    """Build the start state of one task; the same arguments give the same house."""
    check_params(params)
    # Seeing more does not change the house: view params stay out of the seed.
    layout_params = {k: v for k, v in params.items() if k not in VIEW_PARAMS}
    rng = random.Random(f"{env_id}:{split}:{difficulty}:{seed}:{sorted(layout_params.items())}")
    vocab = HELDOUT if split == "heldout" else TRAIN
    lv = LEVELS[difficulty]
    wanted = params.get("task_type")
    chosen: list[TaskType] = [t for t in TASK_TYPES if t == wanted]
    task_type: TaskType = chosen[0] if chosen else rng.choice(lv.task_types)
    role = ROLE_OF.get(task_type)
    rkinds = vocab.receptacles
    n_objects = params.get("objects")
    objs = object_kinds(vocab, n_objects if isinstance(n_objects, int) else None)
    allowed = {k.name for k in objs}

    if role is not None:
        tkind = rng.choice([k for k in objs if k.affords(role)])
    elif task_type == "examine":
        tkind = rng.choice([k for k in objs if k.category in ("small", "decor")])
    else:
        tkind = rng.choice(objs)
    goal_kind: str | None = None
    lamp_kind: str | None = None
    host_kind: str | None = None
    if task_type == "examine":
        lamp_kind = rng.choice(vocab.lamps)
        host_kind = rng.choice([r.name for r in rkinds.values() if r.lamp_host])
    else:
        goal_kind = rng.choice(
            [r.name for r in rkinds.values() if r.role is None and tkind.category in r.accepts]
        )

    # -- receptacles: the ones the task needs, then random ones up to the size --
    counts: dict[str, int] = {}

    def add(kind: str) -> bool:
        if counts.get(kind, 0) >= rkinds[kind].max_count:
            return False
        counts[kind] = counts.get(kind, 0) + 1
        return True

    for kind in (goal_kind, host_kind):
        if kind:
            add(kind)
    for r in rkinds.values():
        if r.role is not None and (r.role == role or lv.all_appliances):
            add(r.name)
    n_targets = 2 if task_type == "pick_two" else 1
    hidden = rng.random() < lv.hidden_p

    def source_ok(r: RecKind, closed: bool) -> bool:
        # Targets never start where they would already count, nor in the appliance
        # they need, nor (easy/medium) inside another appliance.
        return (
            tkind.category in r.accepts
            and r.name not in (goal_kind, host_kind)
            and r.openable == closed
            and (r.role is None or (difficulty == "hard" and r.role != role))
        )

    # Where the targets start: closed receptacles when hidden, open ones otherwise;
    # the other sort only when the house has too few of the wanted one.
    sources = [r.name for r in rkinds.values() if source_ok(r, hidden)]
    fallback = [r.name for r in rkinds.values() if source_ok(r, not hidden)]
    for _ in range(n_targets):
        rng.shuffle(sources)
        rng.shuffle(fallback)
        any(add(k) for k in sources + fallback)
    size = rng.randint(*lv.n_receptacles)
    pool = list(rkinds)
    while sum(counts.values()) < size:
        add(rng.choice(pool))
    order = list(counts)
    rng.shuffle(order)
    receptacles = tuple(f"{k} {i}" for k in order for i in range(1, counts[k] + 1))
    rkind = {r: rkinds[r.rsplit(" ", 1)[0]] for r in receptacles}
    contents: dict[str, list[str]] = {r: [] for r in receptacles}
    okind: dict[str, ObjKind] = {}
    where: dict[str, str | None] = {}
    numbers: dict[str, int] = {}

    def place(kind: ObjKind, rec: str) -> str:
        numbers[kind.name] = numbers.get(kind.name, 0) + 1
        name = f"{kind.name} {numbers[kind.name]}"
        okind[name] = kind
        where[name] = rec
        contents[rec].append(name)
        return name

    def room(kind: ObjKind, recs: list[str]) -> list[str]:
        return [
            r for r in recs if kind.category in rkind[r].accepts and len(contents[r]) < lv.capacity
        ]

    # -- lamps first (they stand on hosts and never move) --
    lamp_rec: dict[str, str] = {}
    hosts = [r for r in receptacles if rkind[r].lamp_host]
    if lamp_kind is not None:
        host = rng.choice([r for r in hosts if rkind[r].name == host_kind])
        lamp = place(vocab.objects[lamp_kind], host)
        lamp_rec[lamp] = host
        others = [r for r in hosts if r != host]
        if difficulty != "easy" and others:
            other_lamp = next(k for k in vocab.lamps if k != lamp_kind)
            place(vocab.objects[other_lamp], rng.choice(others))
    elif hosts and rng.random() < 0.4:
        place(vocab.objects[rng.choice(vocab.lamps)], rng.choice(hosts))

    # -- targets, then confusable kinds, then fillers --
    starts: list[str] = []
    for kinds in (sources, fallback):
        recs = [r for r in receptacles if rkind[r].name in kinds and r not in lamp_rec.values()]
        recs = room(tkind, recs)
        starts += rng.sample(recs, min(len(recs), n_targets - len(starts)))
    for rec in starts:
        place(tkind, rec)
    similar = [vocab.objects[s] for s in tkind.similar if s in allowed]
    visible = [r for r in receptacles if not rkind[r].openable]
    for i in range(rng.randint(*lv.n_similar) if similar else 0):
        kind = similar[i % len(similar)]
        # On hard, one look-alike sits in plain sight to lure a careless agent.
        spots = room(kind, visible if i == 0 and difficulty == "hard" else list(receptacles))
        spots = spots or room(kind, list(receptacles))
        if spots:
            place(kind, rng.choice(spots))
    fillers = [k for k in objs if k.name != tkind.name]
    for _ in range(rng.randint(*lv.n_fillers)):
        kind = rng.choice(fillers)
        spots = room(kind, list(receptacles))
        if spots:
            place(kind, rng.choice(spots))
    for rec in receptacles:
        rng.shuffle(contents[rec])

    if task_type == "examine":
        assert lamp_kind is not None
        words = {"o": tkind.name, "l": lamp_kind}
    else:
        assert goal_kind is not None
        words = {"o": tkind.name, "p": rkinds[goal_kind].prep, "r": goal_kind}
    instruction = rng.choice(vocab.templates[task_type]).format(**words)
    appliance: dict[str, str] = {}
    for r in receptacles:
        role_r = rkind[r].role
        if role_r is not None:
            appliance.setdefault(role_r, r)
    layout = Layout(
        task_type=task_type,
        instruction=instruction,
        receptacles=receptacles,
        rkind=rkind,
        okind=okind,
        target_kind=tkind.name,
        targets=tuple(o for o in okind if okind[o].name == tkind.name),
        goal_kind=goal_kind,
        goal_recs=tuple(r for r in receptacles if rkind[r].name == goal_kind),
        lamp_kind=lamp_kind,
        lamp_rec=lamp_rec,
        role=role,
        appliance=appliance,
        subgoals=SUBGOALS[task_type],
        contents_visible=bool(params.get("contents_visible", False)),
        target_hint=bool(params.get("target_hint", False)),
    )
    return HouseState(
        layout=layout,
        loc=None,
        holding=None,
        where=where,
        contents=contents,
        states={o: set() for o in okind},
    )
