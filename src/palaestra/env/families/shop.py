"""``shop-v1``: a procedurally generated, WebShop-like shopping environment.

Follows WebShop ("WebShop: Towards Scalable Real-World Web Interaction with
Grounded Language Agents", Yao et al., 2022): the agent reads an instruction
such as "i want a red cotton shirt in size m, and price lower than 30.00
dollars", searches a catalogue, pages through results, opens product pages,
selects options and buys. The pages and the ``search[...]`` / ``click[...]``
action syntax are WebShop's; the reward is WebShop's attribute/option/price
matching score.

Where it deviates from WebShop, and why:

- The catalogue is generated per task (``_shop_catalog.py``) instead of
  scraped, so tasks are unlimited, offline, and come in difficulty levels and
  a held-out vocabulary.
- Search ranks by word overlap between the query and a product's brand, noun
  and attributes (ties in a fixed catalogue order), not BM25 over
  descriptions; titles on the results page may omit attributes, so checking
  a product page still matters.
- The reward is the plain fraction of constraints met, the category being one
  constraint (WebShop multiplies by a type-match factor and matches text
  fuzzily); here matching is exact, so success (reward 1.0) is unambiguous.
- ``back`` replaces WebShop's "< Prev" / "Back to Search" buttons: product
  page → results page → search page.

Actions (``action_help``): ``search[<query>]`` on the search page;
``click[<product id>]``, ``click[next >]`` and ``click[< prev]`` on a results
page; ``click[<option>]`` (or ``click[<kind>: <option>]``) on a product page;
``back``; ``buy`` on a product page. Verbs and click targets are
case-insensitive; ``click[buy now]`` is accepted for ``buy``.

Progress (AgentBoard's progress rate): the subgoals are the instruction's
constraints plus the purchase. ``progress`` is the best number of constraints
any visited product page with its selected option met, over
``n_constraints + 1``, and 1.0 after a successful purchase.

Difficulty: easy has 2 constraints (the category and one more), 12 products, one results page and the
right product on it for the instruction's query; medium 3 constraints, 24
products, two pages and near misses; hard 4–5 constraints, 40 products, three
pages of four and many near misses (same category with one attribute wrong,
over budget, or without the wanted option). ``Task.params`` accepts
``n_products`` (1–200) and ``per_page`` (1–10).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

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
from palaestra.env.families._shop_catalog import Product, World, build_world, validate_params

Page = Literal["search", "results", "product", "done"]

_BRACKET_RE = re.compile(r"(search|click)\s*\[(.*)\]", re.IGNORECASE | re.DOTALL)
_NAV_RE = re.compile(r"[\s<>]+")
_REMINDER = "Actions: search[<query>], click[<product id | next > | < prev | option>], back, buy."


@functools.lru_cache(maxsize=32)
def _world(env_id: str, split: str, difficulty: str, seed: int, params_json: str) -> World:
    # Worlds are immutable, so instances share them; make_task then reset builds once.
    return build_world(env_id, split, difficulty, seed, json.loads(params_json))


@dataclass
class _State:
    """All that changes during an episode (``world`` is immutable and shared by snapshots)."""

    world: World
    page: Page = "search"
    query: str = ""
    results: tuple[int, ...] = ()
    page_no: int = 0
    product: int | None = None
    selected: str | None = None
    best_met: int = 0
    solved: bool = False


class ShopEnv(StateSnapshotMixin, Environment):
    """WebShop-like shopping over a generated catalogue (see the module docstring)."""

    description: ClassVar[str] = (
        "WebShop-like online shopping (Yao et al., 2022) over a catalogue generated per task. "
        "The instruction asks for a product of some category with attributes (colour, material, "
        "style), an option (size, capacity, ...) and a price bound. The agent searches, pages "
        "through results, opens product pages, selects an option and buys; the reward is the "
        "fraction of the instruction's constraints the purchase meets. Harder levels add more "
        "constraints, pagination and near-miss products that break exactly one constraint."
    )
    action_help: ClassVar[str] = (
        "search[<query>] (search page) | click[<product id>] (results page, e.g. click[B07XK2]) "
        "| click[next >] / click[< prev] (results pages) | click[<option>] (product page, "
        "e.g. click[m]; click[size: m] also works) | back (previous page) | buy (product page: "
        "purchase it with the selected option)"
    )
    action_verbs: ClassVar[tuple[str, ...]] = ("search", "click", "back", "buy")
    third_party_text: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__("shop-v1")
        self.state: _State | None = None

    # ---- tasks ----------------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        validate_params(params)
        world = _world(self.env_id, split, difficulty, seed, json.dumps(params, sort_keys=True))
        return self._new_task(seed, split, difficulty, params, world.instruction)

    def _reset(self, task: Task) -> str:
        params = json.dumps(task.params, sort_keys=True)
        world = _world(self.env_id, task.split, task.difficulty, task.seed, params)
        self.state = _State(world=world)
        return self._render()

    # ---- acting ---------------------------------------------------------------------

    def _step(self, action: str) -> Observation:
        s = self._s
        low = action.lower()
        if low in ("back", "buy"):
            return self._back() if low == "back" else self._buy()
        m = _BRACKET_RE.fullmatch(action)
        if m is None:
            return self.reject(self._malformed(action), "malformed")
        verb, arg = m.group(1).lower(), " ".join(m.group(2).split())
        if not arg:
            return self.reject(
                f"{verb}[] is empty: put a {'query' if verb == 'search' else 'target'} in the "
                f"brackets, e.g. {self._example(verb)}. " + self._valid_now(),
                "malformed",
            )
        if verb == "search":
            if s.page != "search":
                return self.reject(
                    "You can only search from the search page; use back to get there. "
                    + self._valid_now()
                )
            s.query, s.results, s.page_no = arg, s.world.search(arg), 0
            s.page = "results"
            return self._obs()
        return self._click(arg)

    def _click(self, arg: str) -> Observation:
        s = self._s
        low = arg.lower()
        if s.page == "search":
            return self.reject(
                f"There is nothing to click on the search page. Search first, e.g. "
                f"search[{s.world.expert_query.split()[-1]}]."
            )
        if s.page == "results":
            nav = _NAV_RE.sub("", low)
            if nav in ("next", "prev", "previous"):
                step = 1 if nav == "next" else -1
                if not 0 <= s.page_no + step < self._n_pages():
                    where = "last" if step == 1 else "first"
                    return self.reject(f"This is the {where} results page. " + self._valid_now())
                s.page_no += step
                return self._obs()
            shown = self._shown()
            for i in shown:
                if s.world.products[i].pid.lower() == low:
                    s.page, s.product, s.selected = "product", i, None
                    self._note_met()
                    return self._obs()
            pids = {s.world.products[i].pid.lower(): i for i in s.results}
            if low in pids:
                return self.reject(
                    f"{arg.upper()} is not on this results page; use click[next >] or "
                    "click[< prev] to turn pages. " + self._valid_now()
                )
            return self.reject(f"There is no {arg!r} to click on this page. " + self._valid_now())
        # product page
        if low in ("buy now", "buy"):
            return self._buy()
        if _NAV_RE.sub("", low) in ("prev", "previous", "back"):
            return self._back()
        p = self._product()
        value = low
        kind, sep, rest = low.partition(":")
        if sep and kind.strip() == p.option_kind:
            value = rest.strip()
        if value in p.options:
            s.selected = value
            self._note_met()
            return self._obs(f"You selected {p.option_kind} {value}.")
        opts = ", ".join(f"click[{o}]" for o in p.options)
        return self.reject(
            f"This product has no option {arg!r}. Its {p.option_kind} options: {opts}. "
            "Use buy to purchase it, or back to return to the results."
        )

    def _back(self) -> Observation:
        s = self._s
        if s.page == "search":
            return self.reject("You are already on the search page. " + self._valid_now())
        if s.page == "product":
            s.page, s.product, s.selected = "results", None, None
        else:
            s.page, s.query, s.results, s.page_no = "search", "", (), 0
        return self._obs()

    def _buy(self) -> Observation:
        s = self._s
        if s.page != "product":
            return self.reject(
                "You can only buy from a product page: open a product from the search results "
                "first. " + self._valid_now()
            )
        goal, p = s.world.goal, self._product()
        checks = goal.check(p, s.selected)
        met = sum(ok for _, ok, _ in checks)
        n = goal.n_constraints
        s.page, s.solved = "done", met == n
        s.best_met = max(s.best_met, met)
        missed = [f"{name} (got {got})" for name, ok, got in checks if not ok]
        chosen = f" ({p.option_kind} {s.selected})" if s.selected else ""
        text = (
            f"You bought {p.title}{chosen} [{p.pid}] for ${p.price:.2f}. "
            f"It meets {met} of {n} constraints; score {met / n:.2f}. "
            + (f"Missed: {'; '.join(missed)}." if missed else "Everything matches. Well done!")
        )
        info: dict[str, JsonValue] = {
            "success": s.solved,
            "score": met / n,
            "constraints_met": met,
            "constraints": n,
            "bought": p.pid,
            "page": "done",
        }
        return Observation(text=text, reward=met / n, terminated=True, info=info)

    # ---- the contract's queries -----------------------------------------------------

    def available_actions(self) -> list[str]:
        s = self.state
        if s is None or s.page == "done":
            return []
        if s.page == "search":
            return [f"search[{q}]" for q in s.world.queries]
        if s.page == "results":
            out = [f"click[{s.world.products[i].pid}]" for i in self._shown()]
            if s.page_no + 1 < self._n_pages():
                out.append("click[next >]")
            if s.page_no > 0:
                out.append("click[< prev]")
            return [*out, "back"]
        return [*(f"click[{o}]" for o in self._product().options), "buy", "back"]

    def progress(self) -> float:
        s = self.state
        if s is None:
            return 0.0
        if s.solved:
            return 1.0
        return s.best_met / (s.world.goal.n_constraints + 1)

    def expert(self) -> str:
        s = self._s
        world, goal = s.world, s.world.goal
        if s.page == "done":
            raise ResetNeeded("the episode is over; call reset(task)")
        if s.page == "search":
            return f"search[{world.expert_query}]"
        if s.page == "product":
            if s.product not in world.good:
                return "back"
            if goal.option is not None and s.selected != goal.option:
                return f"click[{goal.option}]"
            return "buy"
        # Results page: page to a fitting product here, unless a fresh search is shorter.
        here = next((r for r, i in enumerate(s.results) if i in world.good), None)
        fresh = world.search(world.expert_query)
        best = next(r for r, i in enumerate(fresh) if i in world.good)
        fresh_cost = 2 + best // world.per_page + 1
        if here is not None and abs(here // world.per_page - s.page_no) + 1 <= fresh_cost:
            target = here // world.per_page
            if target == s.page_no:
                return f"click[{world.products[s.results[here]].pid}]"
            return "click[next >]" if target > s.page_no else "click[< prev]"
        return "back"

    def third_party_spans(self, text: str) -> list[tuple[int, int]]:
        """Sellers write the product titles: each title listed on a results page, the title
        of a product page (where ``inject_instruction`` plants its instruction)."""
        s = self.state
        if s is None or s.page not in ("results", "product"):
            return []
        if s.page == "results":
            listed = [(f"[{p.pid}] ", p) for p in (s.world.products[i] for i in self._shown())]
        else:
            listed = [(f"[Product {self._product().pid}] ", self._product())]
        spans: list[tuple[int, int]] = []
        for head, p in listed:
            at = text.find(head + p.title)
            if at >= 0:
                spans.append((at + len(head), at + len(head) + len(p.title)))
        return spans

    # ---- helpers --------------------------------------------------------------------

    @property
    def _s(self) -> _State:
        if self.state is None:
            raise ResetNeeded("call reset(task) first")
        return self.state

    def _product(self) -> Product:
        s = self._s
        assert s.product is not None, "only called on a product page"
        return s.world.products[s.product]

    def _n_pages(self) -> int:
        s = self._s
        return max(1, -(-len(s.results) // s.world.per_page))

    def _shown(self) -> tuple[int, ...]:
        s = self._s
        k = s.world.per_page
        return s.results[s.page_no * k : (s.page_no + 1) * k]

    def _note_met(self) -> None:
        s = self._s
        if s.product is not None:
            s.best_met = max(s.best_met, s.world.goal.met(s.world.products[s.product], s.selected))

    def _obs(self, prefix: str = "") -> Observation:
        text = self._render()
        return Observation(
            text=f"{prefix}\n{text}" if prefix else text, info={"page": self._s.page}
        )

    def _render(self) -> str:
        s = self._s
        head = f"Instruction: {s.world.instruction}\n"
        if s.page == "search":
            example = s.world.queries[0]
            return (
                head + "[Search page] Type a query to search the store, e.g. "
                f"search[{example}].\n{_REMINDER}"
            )
        if s.page == "results":
            pages = self._n_pages()
            lines = [f'[Results for "{s.query}"] page {s.page_no + 1} of {pages} '
                     f"({len(s.results)} results)"]  # fmt: skip
            if not s.results:
                lines.append("No products match your query. Use back to search again.")
            for i in self._shown():
                p = s.world.products[i]
                lines.append(f"[{p.pid}] {p.title} | ${p.price:.2f}")
            nav = [
                b
                for b, ok in (("[< prev]", s.page_no > 0), ("[next >]", s.page_no + 1 < pages))
                if ok
            ]
            lines.append(
                (f"Pages: {' '.join(nav)}. " if nav else "")
                + "Open a product with click[<product id>]; back returns to the search page."
            )
            return head + "\n".join(lines)
        p = self._product()
        opts = " ".join(f"[{o}]" for o in p.options)
        return head + (
            f"[Product {p.pid}] {p.title}\n"
            f"Price: ${p.price:.2f}\n"
            f"Colour: {p.colour} | Material: {p.material} | Style: {p.style}\n"
            f"{p.option_kind.capitalize()} options: {opts} (selected: {s.selected or 'none'})\n"
            "Select an option with click[<option>]; buy purchases this product; back returns "
            "to the results."
        )

    def _valid_now(self) -> str:
        acts = self.available_actions()
        more = f" (and {len(acts) - 10} more)" if len(acts) > 10 else ""
        return f"Valid now: {', '.join(acts[:10])}{more}."

    def _example(self, verb: str) -> str:
        s = self._s
        if verb == "search":
            return f"search[{s.world.expert_query}]"
        acts = [a for a in self.available_actions() if a.startswith("click[")]
        return acts[0] if acts else "click[B07XK2]"

    def _malformed(self, action: str) -> str:
        shown = action if len(action) <= 60 else action[:57] + "..."
        low = action.lower()
        hint = ""
        for verb in ("search", "click"):
            if low.startswith(verb) and "[" not in low:
                arg = action[len(verb) :].strip(" :")[:40]
                hint = f" Put the argument in square brackets: {verb}[{arg or '...'}]."
        return f"Could not parse the action {shown!r}.{hint} {_REMINDER} {self._valid_now()}"
