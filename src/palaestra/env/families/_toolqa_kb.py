"""Knowledge-base and question generator for the ``toolqa-v1`` family.

Each task gets a small generated knowledge base of fictional entities (in
train/test: people, cities, companies, universities; in heldout: sailors,
harbors, ships, shipyards) with numeric attributes and links to other
entities, and one question whose answer needs 1 to 4 facts from it. The
construction follows ToolQA ("ToolQA: A Dataset for LLM Question Answering
with External Tools", Zhuang et al. 2023): answers come from an external
store the model cannot have memorised, so an agent must use its tools.
Unlike ToolQA's real-world corpora, the store is generated per task, which
makes the family unlimited and the expert exact.

The heldout split uses its own schema (kinds, keys, relation phrases),
question templates, name syllables (names start with letters that train/test
names never start with) and name suffixes, so it measures generalisation to
unseen vocabulary and phrasings.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from palaestra.env.families._calc import evaluate, format_number

__all__ = [
    "HELDOUT_SCHEMA",
    "TRAIN_SCHEMA",
    "Entity",
    "Fact",
    "Schema",
    "World",
    "build_world",
    "normalize_answer",
]

Unit = Literal["year", "count"]
Shape = Literal["value", "entity", "chain", "fork", "pair"]


@dataclass(frozen=True)
class AttrSpec:
    key: str
    lo: int
    hi: int
    unit: Unit
    phrase: str  # noun phrase with {x} for the entity


@dataclass(frozen=True)
class RelSpec:
    key: str
    target: str  # kind of the linked entity
    phrase: str


@dataclass(frozen=True)
class KindSpec:
    name: str
    attrs: tuple[AttrSpec, ...]
    rels: tuple[RelSpec, ...]
    #: Name pattern: "person" (first + last name), "single", or a tuple of suffix words.
    naming: str | tuple[str, ...]
    is_person: bool = False


@dataclass(frozen=True)
class Schema:
    kinds: dict[str, KindSpec]
    onsets: str  # syllable onsets; disjoint between splits, so names are too
    templates: dict[str, tuple[str, ...]]


def _a(key: str, lo: int, hi: int, unit: Unit, phrase: str) -> AttrSpec:
    return AttrSpec(key, lo, hi, unit, phrase)


def _r(key: str, target: str, phrase: str) -> RelSpec:
    return RelSpec(key, target, phrase)


TRAIN_SCHEMA = Schema(
    kinds={
        "person": KindSpec(
            "person",
            (
                _a("born_year", 1920, 1995, "year", "the birth year of {x}"),
                _a("height_cm", 150, 205, "count", "the height in centimetres of {x}"),
            ),
            (
                _r("born_in", "city", "the birth city of {x}"),
                _r("studied_at", "university", "the university {x} studied at"),
                _r("employer", "company", "the employer of {x}"),
            ),
            "person",
            is_person=True,
        ),
        "city": KindSpec(
            "city",
            (
                _a("population", 5_000, 2_500_000, "count", "the population of {x}"),
                _a("founded_year", 1050, 1900, "year", "the founding year of {x}"),
                _a("area_km2", 12, 950, "count", "the area in square kilometres of {x}"),
            ),
            (_r("mayor", "person", "the mayor of {x}"),),
            "single",
        ),
        "company": KindSpec(
            "company",
            (
                _a("founded_year", 1850, 2015, "year", "the founding year of {x}"),
                _a("employees", 20, 180_000, "count", "the number of employees of {x}"),
            ),
            (
                _r("founded_by", "person", "the founder of {x}"),
                _r("ceo", "person", "the CEO of {x}"),
                _r("headquartered_in", "city", "the headquarters city of {x}"),
            ),
            ("Corp", "Systems", "Industries", "Labs", "Group"),
        ),
        "university": KindSpec(
            "university",
            (
                _a("founded_year", 1150, 1990, "year", "the founding year of {x}"),
                _a("students", 400, 75_000, "count", "the number of students at {x}"),
            ),
            (
                _r("located_in", "city", "the home city of {x}"),
                _r("rector", "person", "the rector of {x}"),
            ),
            ("University", "Institute", "College", "Academy"),
        ),
    },
    onsets="bdklmnrtv",
    templates={
        "value": ("What is {A}?", "Look up {A}."),
        "entity_person": ("Who is {A}?", "Who is {A}? Give the name."),
        "entity_other": ("Which {kind} is {A}?", "Name the {kind} that is {A}."),
        "sum": ("What is the sum of {A} and {B}?", "What do {A} and {B} add up to?"),
        "diff_count": ("How much larger is {A} than {B}?", "What is {A} minus {B}?"),
        "diff_year": (
            "How many years separate {A} and {B}?",
            "How many years lie between {A} and {B}?",
        ),
    },
)

HELDOUT_SCHEMA = Schema(
    kinds={
        "sailor": KindSpec(
            "sailor",
            (
                _a("first_voyage", 1690, 1850, "year", "the year of the first voyage of {x}"),
                _a("voyages", 3, 420, "count", "the number of voyages made by {x}"),
            ),
            (
                _r("hometown", "harbor", "the hometown harbor of {x}"),
                _r("serves_on", "ship", "the vessel {x} serves on"),
            ),
            "person",
            is_person=True,
        ),
        "harbor": KindSpec(
            "harbor",
            (
                _a("established", 1250, 1800, "year", "the establishment year of {x}"),
                _a("docks", 2, 140, "count", "the number of docks at {x}"),
            ),
            (_r("harbormaster", "sailor", "the harbormaster of {x}"),),
            ("Haven", "Cove", "Anchorage"),
        ),
        "ship": KindSpec(
            "ship",
            (
                _a("launched", 1650, 1860, "year", "the launch year of {x}"),
                _a("tonnage", 60, 4_800, "count", "the tonnage of {x}"),
                _a("crew_size", 6, 950, "count", "the crew size of {x}"),
            ),
            (
                _r("captain", "sailor", "the captain of {x}"),
                _r("home_port", "harbor", "the home port of {x}"),
                _r("builder", "shipyard", "the shipbuilder of {x}"),
            ),
            "single",
        ),
        "shipyard": KindSpec(
            "shipyard",
            (
                _a("opened", 1450, 1820, "year", "the opening year of {x}"),
                _a("workers", 10, 3_200, "count", "the workforce of {x}"),
            ),
            (
                _r("owner", "sailor", "the owner of {x}"),
                _r("site", "harbor", "the harbor hosting {x}"),
            ),
            ("Yard", "Drydock", "Wharf"),
        ),
    },
    onsets="fghjpswz",
    templates={
        "value": ("Report {A}.", "Tell me {A}."),
        "entity_person": ("Identify {A}.", "Give the full name of {A}."),
        "entity_other": ("Identify the {kind} that is {A}.", "State which {kind} is {A}."),
        "sum": ("Give the total of {A} and {B}.", "Add {A} to {B} and report the result."),
        "diff_count": ("By how much does {A} exceed {B}?", "Report the excess of {A} over {B}."),
        "diff_year": (
            "Compute the gap in years between {A} and {B}.",
            "Determine how far apart, in years, {A} and {B} are.",
        ),
    },
)

_VOWELS = "aeiou"
_CODAS = ("", "", "n", "r", "s", "l")


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str
    values: dict[str, int | str]  # key -> number (attribute) or entity name (link)
    similar: tuple[str, ...] = ()  # look-alike names ("not to be confused with")

    def show(self, key: str) -> str:
        value = self.values[key]
        # Large counts carry thousands separators, as encyclopaedias print them.
        if isinstance(value, int) and value >= 10_000 and not key.endswith("year"):
            return f"{value:,}"
        return str(value)


@dataclass(frozen=True)
class Fact:
    entity: str
    key: str


@dataclass(frozen=True)
class World:
    """One task's knowledge base, question and expert solution."""

    entities: dict[str, Entity]
    question: str
    answer: str
    facts: tuple[Fact, ...]  # in the order the expert retrieves them
    question_entities: tuple[str, ...]
    calc: str | None = None  # the expert's calculate[...] expression
    calc_decoy: str | None = None  # a plausible wrong expression
    decoys: tuple[str, ...] = ()  # wrong finish[...] candidates
    shape: Shape = "value"
    index: dict[str, str] = field(default_factory=dict[str, str])  # lower-case name -> name


@dataclass(frozen=True)
class _Path:
    start: str
    rels: tuple[str, ...]
    attr: str | None


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def normalize_answer(text: str) -> str:
    """Canonical form for comparing answers: case, spacing, quotes and number formats.

    ``"1,200"``, ``"1200"``, ``"1200.0"`` and ``" 1 200 "`` all become ``"1200"``.
    """
    s = " ".join(text.split()).strip("\"'`[] ").rstrip(".").strip("\"'`[] ").lower()
    num = s.replace(",", "").replace("_", "").replace(" ", "")
    # Long digit strings are never answers; bounding them keeps Decimal/int cheap.
    if len(num) <= 30 and _NUMBER.fullmatch(num):
        value = Decimal(num)
        if value == value.to_integral_value():
            return str(int(value))
        return str(value.normalize())
    return s


# ---- generation ---------------------------------------------------------------


def _token(rng: random.Random, onsets: str, syllables: int) -> str:
    parts = [rng.choice(onsets) + rng.choice(_VOWELS) for _ in range(syllables)]
    parts[-1] += rng.choice(_CODAS)
    return "".join(parts).capitalize()


def _name(rng: random.Random, spec: KindSpec, onsets: str) -> str:
    if spec.naming == "person":
        return f"{_token(rng, onsets, 2)} {_token(rng, onsets, rng.randint(2, 3))}"
    if spec.naming == "single":
        return _token(rng, onsets, rng.randint(2, 3))
    return f"{_token(rng, onsets, rng.randint(2, 3))} {rng.choice(spec.naming)}"


def _look_alike(rng: random.Random, name: str, taken: set[str]) -> str | None:
    """A name one vowel away from ``name`` (never its first letter, so the split's alphabet holds)."""
    first, sep, rest = name.partition(" ")
    for _ in range(20):
        word = first
        spots = [i for i in range(1, len(word)) if word[i] in _VOWELS]
        if not spots:
            return None
        i = rng.choice(spots)
        word = word[:i] + rng.choice([v for v in _VOWELS if v != word[i]]) + word[i + 1 :]
        candidate = word + sep + rest
        if candidate.lower() not in taken:
            return candidate
    return None


def _make_entity(
    rng: random.Random, schema: Schema, kind: str, name: str, by_kind: dict[str, list[str]]
) -> Entity:
    spec = schema.kinds[kind]
    values: dict[str, int | str] = {a.key: rng.randint(a.lo, a.hi) for a in spec.attrs}
    for rel in spec.rels:
        values[rel.key] = rng.choice(by_kind[rel.target])
    return Entity(name, kind, values)


def _walk(world: dict[str, Entity], path: _Path) -> tuple[list[Fact], list[str], int | str]:
    """The facts a path needs, the entities it visits, and its value."""
    facts: list[Fact] = []
    visited = [path.start]
    current = world[path.start]
    for rel in path.rels:
        facts.append(Fact(current.name, rel))
        current = world[str(current.values[rel])]
        visited.append(current.name)
    if path.attr is None:
        return facts, visited, current.name
    facts.append(Fact(current.name, path.attr))
    return facts, visited, current.values[path.attr]


def _random_path(
    rng: random.Random,
    schema: Schema,
    world: dict[str, Entity],
    start: str,
    hops: int,
    attr: bool,
    unit: Unit | None = None,
) -> _Path | None:
    rels: list[str] = []
    current = world[start]
    seen = {start}
    for _ in range(hops):
        rel = rng.choice(schema.kinds[current.kind].rels)
        current = world[str(current.values[rel.key])]
        if current.name in seen:
            return None  # a loop ("the mayor of the birth city of X" is X) makes a silly question
        seen.add(current.name)
        rels.append(rel.key)
    if not attr:
        return _Path(start, tuple(rels), None)
    options = [a for a in schema.kinds[current.kind].attrs if unit is None or a.unit == unit]
    if not options:
        return None
    return _Path(start, tuple(rels), rng.choice(options).key)


def _phrase(schema: Schema, world: dict[str, Entity], path: _Path) -> str:
    text = path.start
    current = world[path.start]
    for rel in path.rels:
        spec = next(r for r in schema.kinds[current.kind].rels if r.key == rel)
        text = spec.phrase.format(x=text)
        current = world[str(current.values[rel])]
    if path.attr is not None:
        spec_a = next(a for a in schema.kinds[current.kind].attrs if a.key == path.attr)
        text = spec_a.phrase.format(x=text)
    return text


def build_world(
    rng: random.Random, heldout: bool, difficulty: str, per_kind: int, similar: int
) -> World:
    """Generate a knowledge base and a question of ``difficulty`` (``easy``/``medium``/``hard``)."""
    schema = HELDOUT_SCHEMA if heldout else TRAIN_SCHEMA
    taken: set[str] = set()
    by_kind: dict[str, list[str]] = {}
    for kind, spec in schema.kinds.items():
        names: list[str] = []
        while len(names) < per_kind:
            name = _name(rng, spec, schema.onsets)
            if name.lower() not in taken:
                taken.add(name.lower())
                names.append(name)
        by_kind[kind] = names
    entities = {
        name: _make_entity(rng, schema, kind, name, by_kind)
        for kind, names in by_kind.items()
        for name in names
    }
    for _ in range(1000):
        world = _question(rng, schema, entities, difficulty)
        if world is not None:
            break
    else:  # pragma: no cover - the schemas make this unreachable for per_kind >= 3
        raise RuntimeError("could not generate a question; raise entities_per_kind")
    return _add_look_alikes(rng, schema, world, by_kind, taken, similar)


def _question(
    rng: random.Random, schema: Schema, entities: dict[str, Entity], difficulty: str
) -> World | None:
    names = list(entities)
    start = rng.choice(names)
    if difficulty in ("easy", "medium"):
        hops = 0 if difficulty == "easy" else 1
        if rng.random() < 0.5:
            path = _random_path(rng, schema, entities, start, hops, attr=True)
            shape: Shape = "value"
        else:
            path = _random_path(rng, schema, entities, start, hops + 1, attr=False)
            shape = "entity"
        if path is None:
            return None
        facts, _, value = _walk(entities, path)
        phrase = _phrase(schema, entities, path)
        if shape == "value":
            text = rng.choice(schema.templates["value"]).format(A=phrase)
        else:
            kind = schema.kinds[entities[str(value)].kind]
            key = "entity_person" if kind.is_person else "entity_other"
            text = rng.choice(schema.templates[key]).format(A=phrase, kind=kind.name)
        return _finish_world(rng, schema, entities, text, str(value), facts, [start], shape)
    return _hard_question(rng, schema, entities, start)


def _hard_question(
    rng: random.Random, schema: Schema, entities: dict[str, Entity], start: str
) -> World | None:
    shape: Shape = rng.choice(("chain", "fork", "pair"))
    unit: Unit = rng.choice(("year", "count"))
    if shape == "chain":
        a = _random_path(rng, schema, entities, start, 0, attr=True, unit=unit)
        b = _random_path(rng, schema, entities, start, 2, attr=True, unit=unit)
    elif shape == "fork":
        a = _random_path(rng, schema, entities, start, 1, attr=True, unit=unit)
        b = _random_path(rng, schema, entities, start, 1, attr=True, unit=unit)
    else:
        other = rng.choice(list(entities))
        a = _random_path(rng, schema, entities, start, 1, attr=True, unit=unit)
        b = _random_path(rng, schema, entities, other, 1, attr=True, unit=unit)
    if a is None or b is None:
        return None
    facts_a, seen_a, va = _walk(entities, a)
    facts_b, seen_b, vb = _walk(entities, b)
    shared = 1 if shape != "pair" else 0
    if len(set(seen_a) | set(seen_b)) != len(seen_a) + len(seen_b) - shared:
        return None  # the two branches must not meet: each fact is needed exactly once
    if shape == "pair" and seen_a[0] == seen_b[0]:
        return None
    assert isinstance(va, int) and isinstance(vb, int)
    if va == vb:
        return None
    op = "diff" if unit == "year" or rng.random() < 0.5 else "sum"
    if op == "diff" and va < vb:
        a, b, va, vb, facts_a, facts_b = b, a, vb, va, facts_b, facts_a
    pa, pb = _phrase(schema, entities, a), _phrase(schema, entities, b)
    # A wrong-hop answer: B's attribute read from another entity of the same kind.
    last = facts_b[-1]
    kind = entities[last.entity].kind
    others = [e.values[last.key] for e in entities.values() if e.kind == kind]
    wrong_b = rng.choice([v for v in others if isinstance(v, int) and v != vb] or [vb + 1])
    if op == "sum":
        text = rng.choice(schema.templates["sum"]).format(A=pa, B=pb)
        answer, calc, decoy = va + vb, f"{va} + {vb}", f"{va} - {vb}" if va > vb else f"{vb} - {va}"
        wrong = va + wrong_b
    else:
        key = "diff_year" if unit == "year" else "diff_count"
        if key == "diff_year" and rng.random() < 0.5:
            pa, pb = pb, pa  # "between A and B" reads either way; the answer stays positive
        text = rng.choice(schema.templates[key]).format(A=pa, B=pb)
        answer, calc, decoy = va - vb, f"{va} - {vb}", f"{va} + {vb}"
        wrong = abs(va - wrong_b)
    facts = list(dict.fromkeys([*facts_a, *facts_b]))
    starts = list(dict.fromkeys([a.start, b.start]))
    return _finish_world(
        rng, schema, entities, text, str(answer), facts, starts, shape, calc, decoy, str(wrong)
    )


def _finish_world(
    rng: random.Random,
    schema: Schema,
    entities: dict[str, Entity],
    text: str,
    answer: str,
    facts: list[Fact],
    starts: list[str],
    shape: Shape,
    calc: str | None = None,
    calc_decoy: str | None = None,
    extra_decoy: str | None = None,
) -> World:
    target = normalize_answer(answer)
    pool: list[str] = []
    if calc is not None:
        assert calc_decoy is not None and extra_decoy is not None
        pool = [format_number(evaluate(calc_decoy)), extra_decoy]
    elif shape == "entity":
        kind = entities[answer].kind
        pool = [e.name for e in entities.values() if e.kind == kind]
    else:
        last = facts[-1]
        kind = entities[last.entity].kind
        pool = [str(e.values[last.key]) for e in entities.values() if e.kind == kind]
    if calc is None:
        rng.shuffle(pool)
    decoys: list[str] = []
    for d in pool:
        if normalize_answer(d) != target and d not in decoys:
            decoys.append(d)
    while len(decoys) < 2:  # tiny pools: fall back to a nearby wrong number or name
        d = str(int(target) + rng.randint(1, 9)) if target.isdigit() else f"{answer} Jr"
        if normalize_answer(d) != target and d not in decoys:
            decoys.append(d)
    return World(
        entities=entities,
        question=text,
        answer=answer,
        facts=tuple(facts),
        question_entities=tuple(starts),
        calc=calc,
        calc_decoy=calc_decoy,
        decoys=tuple(decoys[:2]),
        shape=shape,
    )


def _add_look_alikes(
    rng: random.Random,
    schema: Schema,
    world: World,
    by_kind: dict[str, list[str]],
    taken: set[str],
    similar: int,
) -> World:
    """Add entities whose names are one letter away from those the question needs (hard tasks)."""
    entities = dict(world.entities)
    needed = list(dict.fromkeys([*world.question_entities, *(f.entity for f in world.facts)]))
    for name in needed:
        count = similar if name in world.question_entities else max(0, similar - 1)
        twins: list[str] = []
        for _ in range(count):
            twin = _look_alike(rng, name, taken)
            if twin is None:
                break
            taken.add(twin.lower())
            twins.append(twin)
            kind = entities[name].kind
            entities[twin] = Entity(
                twin, kind, _make_entity(rng, schema, kind, twin, by_kind).values, (name,)
            )
        if twins:
            old = entities[name]
            entities[name] = Entity(old.name, old.kind, old.values, tuple(twins))
    return World(
        entities=entities,
        question=world.question,
        answer=world.answer,
        facts=world.facts,
        question_entities=world.question_entities,
        calc=world.calc,
        calc_decoy=world.calc_decoy,
        decoys=world.decoys,
        shape=world.shape,
        index={name.lower(): name for name in entities},
    )
