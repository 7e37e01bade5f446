"""Vocabulary, data models and catalogue generation for the ``shop`` family.

``build_world`` turns ``(env_id, split, difficulty, seed, params)`` into a
:class:`World`: a product catalogue, the goal (the instruction's constraints),
the instruction text and a few suggested search queries. The page logic lives
in ``shop.py``; this module knows nothing about actions.

Two vocabularies: ``SEEN`` (train and test) and ``HELDOUT``. They share no
product nouns, colours, materials, styles, brands or option values (compared
as alphabetic words; numbers such as sizes are not vocabulary) and no
instruction templates. Option *kind* names ("size", "capacity") may recur:
they play the role of structural words such as "price".
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, JsonValue

AttrKind = Literal["style", "colour", "material"]
#: Adjective order in product names and instructions ("a vintage red cotton shirt").
ATTR_KINDS: tuple[AttrKind, ...] = ("style", "colour", "material")
ConstraintKind = Literal["style", "colour", "material", "option", "price"]
_EXTRA_KINDS: tuple[ConstraintKind, ...] = ("style", "colour", "material", "option", "price")

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> frozenset[str]:
    """Lower-case alphanumeric words: what search matches on."""
    return frozenset(_TOKEN_RE.findall(text.lower()))


# ---- vocabulary -----------------------------------------------------------------


class Category(BaseModel):
    model_config = ConfigDict(frozen=True)

    noun: str
    materials: tuple[str, ...]
    option_kind: str
    option_values: tuple[str, ...]
    #: How the instruction asks for an option value; ``{}`` is the value.
    option_phrase: str
    price_range: tuple[float, float]


class Template(BaseModel):
    """An instruction template: ``lead`` holds ``{a} {desc}``; ``price`` holds ``{p}``."""

    model_config = ConfigDict(frozen=True)

    lead: str
    price: str


class Vocab(BaseModel):
    model_config = ConfigDict(frozen=True)

    categories: tuple[Category, ...]
    colours: tuple[str, ...]
    styles: tuple[str, ...]
    brands: tuple[str, ...]
    templates: tuple[Template, ...]


def _categories(table: str) -> tuple[Category, ...]:
    """Parse rows of ``noun | materials | option kind | option values | phrase | low-high``."""
    out: list[Category] = []
    for row in table.strip().splitlines():
        noun, materials, kind, values, phrase, prices = (c.strip() for c in row.split("|"))
        lo, hi = prices.split("-")
        out.append(
            Category(
                noun=noun,
                materials=tuple(m.strip() for m in materials.split(",")),
                option_kind=kind,
                option_values=tuple(v.strip() for v in values.split(",")),
                option_phrase=phrase,
                price_range=(float(lo), float(hi)),
            )
        )
    return tuple(out)


# Words containing an action verb ("back", "buy") are avoided: the verb-renaming
# perturbation rewrites every occurrence of a listed action in observation text.
SEEN = Vocab(
    categories=_categories("""
shirt        | cotton, polyester, wool      | size        | xs, s, m, l, xl            | in size {}           | 8-45
jacket       | wool, nylon, leather         | size        | xs, s, m, l, xl            | in size {}           | 30-150
mug          | ceramic, glass, steel        | capacity    | 8 oz, 12 oz, 16 oz, 20 oz  | with a {} capacity   | 6-30
lamp         | metal, wood, glass           | bulb        | warm white, cool white, daylight | with a {} bulb | 15-90
blanket      | wool, cotton, fleece         | size        | twin, full, queen, king    | in {} size           | 20-110
water bottle | steel, plastic, glass        | capacity    | 12 oz, 18 oz, 24 oz, 32 oz | with a {} capacity   | 8-40
towel        | cotton, microfiber, polyester| pack size   | 2 pack, 4 pack, 6 pack     | in a {}              | 10-45
headset      | plastic, metal, leather      | connection  | wired, wireless            | in the {} version    | 20-200
pillow       | memory foam, down, polyester | size        | standard, queen, king      | in {} size           | 15-70
watch        | steel, leather, plastic      | band size   | small, medium, large       | with a {} band       | 25-250
chair        | wood, metal, plastic         | pack size   | 1 pack, 2 pack, 4 pack     | in a {}              | 30-180
lunch box    | plastic, steel, nylon        | compartments| single, double, triple     | with {} compartments | 8-35
"""),
    colours=("red", "blue", "black", "white", "green", "grey", "navy", "pink", "brown", "yellow"),
    styles=("modern", "classic", "vintage", "sporty", "casual", "deluxe"),
    brands=("Northwind", "Acme", "Zenith", "Orbit", "Lumen", "Harbor", "Pinecrest", "Summit"),
    templates=(
        Template(lead="i want {a} {desc}", price=", and price lower than {p} dollars"),
        Template(lead="i am looking for {a} {desc}", price=", and price lower than {p} dollars"),
        Template(lead="i need {a} {desc}", price=" that costs less than {p} dollars"),
        Template(lead="find me {a} {desc}", price=" priced under {p} dollars"),
    ),
)

HELDOUT = Vocab(
    categories=_categories("""
scarf        | silk, cashmere, chiffon      | length      | short, regular, long       | in the {} length     | 12-80
sandal       | suede, cork, jute            | size        | eu 37, eu 38, eu 39, eu 40, eu 41 | in size {}    | 20-90
teapot       | porcelain, cast iron, stoneware | capacity | 2 cup, 4 cup, 6 cup        | with a {} capacity   | 15-70
vase         | porcelain, crystal, bamboo   | height      | 20 cm, 30 cm, 40 cm        | that is {} tall      | 12-90
rug          | jute, silk, sisal            | dimensions  | 3x5 ft, 5x7 ft, 8x10 ft    | measuring {}         | 40-300
kettle       | copper, brass, enamel        | volume      | 1 liter, 2 liter, 3 liter  | holding {}           | 20-110
cushion      | velvet, satin, linen         | dimensions  | 16 inch, 18 inch, 20 inch  | sized {}             | 10-50
candle       | soy wax, beeswax, paraffin   | scent       | vanilla, cedar, jasmine, sandalwood | with a {} scent | 8-40
tote         | jute, denim, suede           | handle      | short handle, long handle  | with a {}            | 15-60
planter      | terracotta, bamboo, concrete | diameter    | 6 inch, 8 inch, 10 inch    | with a {} diameter   | 10-70
"""),
    colours=(
        "teal", "maroon", "beige", "lavender", "olive",
        "coral", "ivory", "mustard", "burgundy", "turquoise",
    ),
    styles=("rustic", "minimalist", "bohemian", "retro", "elegant", "industrial"),
    brands=("Quillon", "Solenne", "Kestrel", "Marlowe", "Tidewell", "Ambergate", "Foxglove", "Larkspur"),
    templates=(
        Template(lead="could you get me {a} {desc}", price=" for no more than {p} dollars"),
        Template(lead="please pick out {a} {desc}", price="; my budget is {p} dollars"),
        Template(lead="my cart is missing {a} {desc}", price=", as long as it costs below {p} dollars"),
    ),
)  # fmt: skip

# ---- difficulty -----------------------------------------------------------------


class Level(BaseModel):
    model_config = ConfigDict(frozen=True)

    n_products: int
    per_page: int
    max_pages: int
    #: Constraints besides the category, drawn uniformly from this tuple.
    n_extra: tuple[int, ...]
    #: Same category, one constraint broken (an attribute, the price, or the option).
    n_near: int
    #: Same category, random attributes.
    n_same: int
    #: Another category with the goal's colour and style.
    n_other_near: int
    #: Probability that an attribute is written in a product's title (it is always on its page).
    title_p: float


LEVELS: dict[str, Level] = {
    "easy": Level(
        n_products=12, per_page=5, max_pages=1, n_extra=(1,),
        n_near=0, n_same=2, n_other_near=1, title_p=1.0,
    ),
    "medium": Level(
        n_products=24, per_page=5, max_pages=2, n_extra=(2,),
        n_near=3, n_same=3, n_other_near=2, title_p=0.7,
    ),
    "hard": Level(
        n_products=40, per_page=4, max_pages=3, n_extra=(3, 4),
        n_near=10, n_same=4, n_other_near=3, title_p=0.5,
    ),
}  # fmt: skip

#: Generator overrides accepted in ``Task.params``: name → (min, max, description).
PARAMS: dict[str, tuple[int, int, str]] = {
    "n_products": (1, 200, "catalogue size"),
    "per_page": (1, 10, "results shown per page"),
}


def validate_params(params: dict[str, JsonValue]) -> dict[str, int]:
    """Check ``Task.params``; a clear ValueError naming any unknown or bad parameter."""
    out: dict[str, int] = {}
    for name, value in params.items():
        if name not in PARAMS:
            known = ", ".join(f"{k} ({v[2]})" for k, v in PARAMS.items())
            raise ValueError(f"shop: unknown param {name!r}; accepted params: {known}")
        lo, hi, _ = PARAMS[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"shop: param {name!r} must be an int in [{lo}, {hi}], got {value!r}")
        out[name] = value
    return out


# ---- the world ------------------------------------------------------------------


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: str
    title: str
    noun: str
    style: str
    colour: str
    material: str
    price: float
    option_kind: str
    options: tuple[str, ...]
    #: Words search matches on: brand, noun and every attribute (titles may omit some).
    words: frozenset[str]

    def attr(self, kind: AttrKind) -> str:
        return self.style if kind == "style" else self.colour if kind == "colour" else self.material


class Goal(BaseModel):
    """The instruction's constraints. The category is always one of them."""

    model_config = ConfigDict(frozen=True)

    noun: str
    attrs: tuple[tuple[AttrKind, str], ...]
    option_kind: str | None = None
    option: str | None = None
    max_price: float | None = None

    @property
    def n_constraints(self) -> int:
        return 1 + len(self.attrs) + (self.option is not None) + (self.max_price is not None)

    def check(self, product: Product, selected: str | None) -> list[tuple[str, bool, str]]:
        """Each constraint as ``(name, met, what the product has)``."""
        out = [("category", product.noun == self.noun, product.noun)]
        out += [(k, product.attr(k) == v, product.attr(k)) for k, v in self.attrs]
        if self.option is not None:
            ok = product.option_kind == self.option_kind and selected == self.option
            out.append((self.option_kind or "option", ok, selected or "none selected"))
        if self.max_price is not None:
            out.append(("price", product.price < self.max_price, f"${product.price:.2f}"))
        return out

    def met(self, product: Product, selected: str | None) -> int:
        return sum(ok for _, ok, _ in self.check(product, selected))

    def fits(self, product: Product) -> bool:
        """Whether buying ``product`` (with the right option selected) meets every constraint."""
        return (
            product.noun == self.noun
            and all(product.attr(k) == v for k, v in self.attrs)
            and (self.option is None or self.option in product.options)
            and (self.max_price is None or product.price < self.max_price)
        )


class World(BaseModel):
    """Everything fixed for one task. Immutable, so episode snapshots share it."""

    model_config = ConfigDict(frozen=True)

    instruction: str
    goal: Goal
    #: In tie-break order: search ranks by score, then by position here.
    products: tuple[Product, ...]
    per_page: int
    max_results: int
    expert_query: str
    #: Suggested ``search[...]`` queries on the search page (the expert's among them).
    queries: tuple[str, ...]
    #: Indices of products that meet every constraint.
    good: frozenset[int]

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        return self

    def search(self, query: str) -> tuple[int, ...]:
        """Product indices ranked by query-word overlap (ties: catalogue order), capped."""
        q = tokens(query)
        scored = [(-len(q & p.words), i) for i, p in enumerate(self.products)]
        return tuple(i for s, i in sorted(scored) if s < 0)[: self.max_results]


# ---- generation -----------------------------------------------------------------

_ID_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _price(rng: random.Random, lo: float, hi: float) -> float:
    # Cents never .00, so a price never equals a (whole-dollar) bound.
    return int(rng.uniform(lo, max(lo, hi - 1))) + rng.choice((0.49, 0.95, 0.99))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _desc(goal_attrs: dict[AttrKind, str], noun: str) -> str:
    return " ".join([*(goal_attrs[k] for k in ATTR_KINDS if k in goal_attrs), noun])


class _Draft(BaseModel):
    """A product before it gets its id and title."""

    cat: Category
    style: str
    colour: str
    material: str
    price: float
    options: tuple[str, ...]


def _options(
    rng: random.Random, cat: Category, need: str | None, avoid: str | None
) -> tuple[str, ...]:
    pool = [v for v in cat.option_values if v != avoid]
    k = rng.randint(min(2, len(pool)), len(pool))
    chosen = set(rng.sample(pool, k))
    if need is not None:
        chosen.add(need)
    return tuple(v for v in cat.option_values if v in chosen)


def _random_draft(rng: random.Random, vocab: Vocab, cat: Category) -> _Draft:
    return _Draft(
        cat=cat,
        style=rng.choice(vocab.styles),
        colour=rng.choice(vocab.colours),
        material=rng.choice(cat.materials),
        price=_price(rng, *cat.price_range),
        options=_options(rng, cat, None, None),
    )


def build_world(
    env_id: str, split: str, difficulty: str, seed: int, params: dict[str, JsonValue]
) -> World:
    """Generate the task's world; the same arguments give the same world on every machine."""
    if split not in ("train", "test", "heldout"):
        raise ValueError(f"shop: split must be 'train', 'test' or 'heldout', got {split!r}")
    if difficulty not in LEVELS:
        raise ValueError(f"shop: difficulty must be one of {list(LEVELS)}, got {difficulty!r}")
    overrides = validate_params(params)
    rng = random.Random(f"{env_id}:{split}:{difficulty}:{seed}:{sorted(overrides.items())}")
    vocab = HELDOUT if split == "heldout" else SEEN
    level = LEVELS[difficulty]
    n_products = overrides.get("n_products", level.n_products)
    per_page = overrides.get("per_page", level.per_page)

    cat = rng.choice(vocab.categories)
    target = _random_draft(rng, vocab, cat)
    kinds = rng.sample(_EXTRA_KINDS, rng.choice(level.n_extra))
    attrs: dict[AttrKind, str] = {k: getattr(target, k) for k in ATTR_KINDS if k in kinds}
    option = rng.choice(target.options) if "option" in kinds else None
    max_price = None
    if "price" in kinds:
        margin = rng.uniform(1.0, max(2.0, 0.4 * target.price))
        max_price = float(math.ceil((target.price + margin) / 5) * 5)
    goal = Goal(
        noun=cat.noun,
        attrs=tuple((k, attrs[k]) for k in ATTR_KINDS if k in attrs),
        option_kind=cat.option_kind if option else None,
        option=option,
        max_price=max_price,
    )

    drafts = [target]
    # Near misses: the target with exactly one constraint broken.
    breakable = [k for k in kinds if k != "option" or len(cat.option_values) > 1]
    # Over-budget and option-less twins match every query word, so they tie with
    # the target in search and push it down the pages: twice as many of them.
    breakable += [k for k in breakable if k in ("price", "option")]
    rng.shuffle(breakable)
    for j in range(level.n_near if breakable else 0):
        broken = breakable[j % len(breakable)]
        d = target.model_copy()
        top = min(cat.price_range[1], max_price) if max_price else cat.price_range[1]
        d.price = _price(rng, cat.price_range[0], top)
        d.options = _options(rng, cat, option, None)
        if broken == "price" and max_price is not None:
            d.price = _price(rng, max_price + 1, max_price * 1.5 + 3)
        elif broken == "option":
            d.options = _options(rng, cat, None, option)
        elif broken == "material":
            d.material = rng.choice([m for m in cat.materials if m != target.material])
        elif broken == "colour":
            d.colour = rng.choice([c for c in vocab.colours if c != target.colour])
        elif broken == "style":
            d.style = rng.choice([s for s in vocab.styles if s != target.style])
        drafts.append(d)
    drafts += [_random_draft(rng, vocab, cat) for _ in range(level.n_same)]
    others = [c for c in vocab.categories if c is not cat]
    for _ in range(level.n_other_near):
        d = _random_draft(rng, vocab, rng.choice(others))
        d.colour, d.style = target.colour, target.style
        drafts.append(d)
    while len(drafts) < n_products:
        drafts.append(_random_draft(rng, vocab, rng.choice(vocab.categories)))
    drafts = drafts[:n_products]

    products = _finish(rng, vocab, level, drafts)
    target_product = products[0]
    order = list(products)
    rng.shuffle(order)
    expert_query = _desc(attrs, cat.noun)
    max_results = per_page * level.max_pages
    # Easy promises the right product on the first results page of the expert's
    # query; harder levels at least within the results shown.
    limit = per_page if difficulty == "easy" else max_results
    ranked = _world(order, goal, per_page, max_results, expert_query, (), "").search(expert_query)
    # The target matches every query word, so moving it just before the product
    # ranked r puts it at rank r at most (fewer when fewer products tie with it).
    anchor = order[ranked[rng.randrange(min(limit, len(ranked)))]]
    if anchor is not target_product:
        order = [p for p in order if p is not target_product]
        at = next(j for j, p in enumerate(order) if p is anchor)
        order.insert(at, target_product)

    queries = _queries(rng, vocab, cat, target, attrs, expert_query)
    template = rng.choice(vocab.templates)
    desc = _desc(attrs, cat.noun)
    instruction = template.lead.format(a=_article(desc), desc=desc)
    if option is not None:
        instruction += " " + cat.option_phrase.format(option)
    if max_price is not None:
        instruction += template.price.format(p=f"{max_price:.2f}")
    return _world(order, goal, per_page, max_results, expert_query, queries, instruction)


def _world(
    order: list[Product],
    goal: Goal,
    per_page: int,
    max_results: int,
    expert_query: str,
    queries: tuple[str, ...],
    instruction: str,
) -> World:
    return World(
        instruction=instruction,
        goal=goal,
        products=tuple(order),
        per_page=per_page,
        max_results=max_results,
        expert_query=expert_query,
        queries=queries,
        good=frozenset(i for i, p in enumerate(order) if goal.fits(p)),
    )


def _finish(rng: random.Random, vocab: Vocab, level: Level, drafts: list[_Draft]) -> list[Product]:
    ids: set[str] = set()
    out: list[Product] = []
    for d in drafts:
        pid = "B0" + "".join(rng.choices(_ID_CHARS, k=4))
        while pid in ids:
            pid = "B0" + "".join(rng.choices(_ID_CHARS, k=4))
        ids.add(pid)
        brand = rng.choice(vocab.brands)
        shown = [a for a in (d.style, d.colour, d.material) if rng.random() < level.title_p]
        title = " ".join([brand, *shown, d.cat.noun]).title()
        words = tokens(" ".join((brand, d.cat.noun, d.style, d.colour, d.material)))
        out.append(
            Product(
                pid=pid,
                title=title,
                noun=d.cat.noun,
                style=d.style,
                colour=d.colour,
                material=d.material,
                price=round(d.price, 2),
                option_kind=d.cat.option_kind,
                options=d.options,
                words=words,
            )
        )
    return out


def _queries(
    rng: random.Random,
    vocab: Vocab,
    cat: Category,
    target: _Draft,
    attrs: dict[AttrKind, str],
    expert_query: str,
) -> tuple[str, ...]:
    """The expert's query, a near-miss query and three for other categories, shuffled."""
    near = f"{rng.choice([c for c in vocab.colours if c != target.colour])} {cat.noun}"
    out = [expert_query, near]
    for other in rng.sample([c for c in vocab.categories if c is not cat], 3):
        out.append(f"{rng.choice(vocab.colours)} {rng.choice(other.materials)} {other.noun}")
    out = list(dict.fromkeys(out))
    rng.shuffle(out)
    return tuple(out)
