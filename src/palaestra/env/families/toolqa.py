"""``toolqa-v1``: multi-hop question answering with tools over a generated knowledge base.

Follows ToolQA ("ToolQA: A Dataset for LLM Question Answering with External
Tools", Zhuang et al. 2023) — questions whose answers live only in an
external store — with the action space of ReAct ("ReAct: Synergizing
Reasoning and Acting in Language Models", Yao et al. 2023): ``search[entity]``
opens an entity's page, ``lookup[key]`` reads a key on the open page,
``finish[answer]`` commits to an answer. A ``calculate[expression]`` tool
(a safe evaluator, :mod:`._calc`) does the arithmetic of hard questions.

Deviations from ReAct: a page lists its keys and ``lookup`` takes a key name,
not a keyword whose next matching sentence is returned; a search for an
unknown name is rejected as an invalid action (with near-miss suggestions)
and leaves the open page as it was.

Tool use is counted as in SMART ("SMART: Self-Aware Agent for Tool Overuse
Mitigation", Qian et al. 2025): ``info["tool_calls"]`` is the number of tool
calls so far (well-formed calls, including ones the tool refused: a refused
call is still a wasted call), ``info["tool_calls_by_tool"]`` splits it per
tool, and ``info["optimal_tool_calls"]`` is the length of the expert's plan
from the start, so overuse is ``tool_calls - optimal_tool_calls``.

Difficulty: easy questions need one fact, medium two (a hop through a link),
hard four facts across three pages plus arithmetic, with look-alike entities
("Veltrix Corp" / "Valtrix Corp") in the knowledge base. The heldout split
uses other entity kinds, keys, name syllables and question templates
(see :mod:`._toolqa_kb`).

Generator parameters (``params``): ``entities_per_kind`` (int, 3-12; default
3/4/5 for easy/medium/hard) and ``similar_names`` (int, 0-3 look-alikes per
question entity; default 0 for easy and medium, 2 for hard).
"""

from __future__ import annotations

import difflib
import functools
import random
import re
from typing import Any, ClassVar

from pydantic import JsonValue

from palaestra.env._core import (
    Difficulty,
    Environment,
    Observation,
    Split,
    StateSnapshotMixin,
    Task,
)
from palaestra.env.families._calc import CalcError, evaluate, format_number
from palaestra.env.families._toolqa_kb import World, build_world, normalize_answer

__all__ = ["ToolQAEnv"]

_VERBS = ("search", "lookup", "calculate", "finish")
_ACTION = re.compile(r"([A-Za-z_]+)\s*\[(.*)\]", re.DOTALL)
_BARE = re.compile(r"(search|lookup|calculate|finish)\b\s*(.*)", re.DOTALL | re.IGNORECASE)
_PER_KIND = {"easy": 3, "medium": 4, "hard": 5}
_SIMILAR = {"easy": 0, "medium": 0, "hard": 2}
_PARAMS: dict[str, tuple[int, int]] = {"entities_per_kind": (3, 12), "similar_names": (0, 3)}
_MAX_SEARCHES = 15
_MAX_FINISH_VALUES = 3
_ARG_NAME = {
    "search": "entity name",
    "lookup": "key",
    "calculate": "expression",
    "finish": "answer",
}


def _fresh_state(n_facts: int = 0) -> dict[str, Any]:
    return {
        "page": None,  # name of the open page
        "retrieved": [],  # "entity|key" of every lookup made
        "found": 0,  # how many of the question's facts are retrieved
        "n_facts": n_facts,
        "entities": [],  # names the agent has seen (question, lookups), in order
        "values": [],  # values shown by lookups and calculations, most recent last
        "computed": [],  # normalised calculation results
        "calls": dict.fromkeys(_VERBS, 0),
        "done": False,
        "solved": False,
    }


@functools.lru_cache(maxsize=512)
def _build(
    env_id: str, seed: int, split: str, difficulty: str, params: tuple[tuple[str, int], ...]
) -> World:
    """The world of a task. Cached: searches and pass^k reset the same task many times,
    and worlds are never mutated."""
    rng = random.Random(f"{env_id}:{split}:{difficulty}:{seed}:{list(params)}")
    given = dict(params)
    per_kind = given.get("entities_per_kind", _PER_KIND[difficulty])
    similar = given.get("similar_names", _SIMILAR[difficulty])
    return build_world(rng, split == "heldout", difficulty, per_kind, similar)


class ToolQAEnv(StateSnapshotMixin, Environment):
    """Answer a question from a generated knowledge base with search/lookup/calculate/finish."""

    env_id = "toolqa-v1"
    description: ClassVar[str] = (
        "Multi-hop question answering with tools (ToolQA, ReAct). Each task has its own "
        "generated knowledge base of fictional entities - people, cities, companies, "
        "universities - with numeric attributes and links between them. The agent opens "
        "pages with search[...], reads keys with lookup[...], does arithmetic with "
        "calculate[...] and commits with finish[...]. Easy questions need one fact, medium "
        "two linked facts, hard four facts plus arithmetic among look-alike names. Tool "
        "calls are counted against the expert's plan to measure tool overuse."
    )
    action_help: ClassVar[str] = (
        "search[<entity>] | lookup[<key>] | calculate[<expression>] | finish[<answer>]"
    )
    action_verbs: ClassVar[tuple[str, ...]] = _VERBS
    third_party_text: ClassVar[bool] = True

    def __init__(self, env_id: str | None = None) -> None:
        super().__init__(env_id)
        self.state: dict[str, Any] = _fresh_state()
        # The world is immutable and derived from the task, so it stays out of
        # ``state`` (snapshots stay cheap); ``_world_of`` rebuilds it after a
        # restore to another task.
        self._world: World | None = None
        self._world_task: Task | None = None
        self._optimal = 0

    # ---- tasks ----------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        world = self._generate(seed, split, difficulty, params)
        return self._new_task(seed, split, difficulty, params, world.question)

    def _generate(
        self, seed: int, split: str, difficulty: str, params: dict[str, JsonValue]
    ) -> World:
        for name, value in params.items():
            if name not in _PARAMS:
                raise ValueError(f"unknown toolqa parameter {name!r}; accepted: {sorted(_PARAMS)}")
            lo, hi = _PARAMS[name]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"toolqa parameter {name!r} must be an int in [{lo}, {hi}]")
        if difficulty not in _PER_KIND:
            raise ValueError(f"difficulty must be easy, medium or hard, got {difficulty!r}")
        key = tuple(sorted((k, v) for k, v in params.items() if isinstance(v, int)))
        return _build(self.env_id, seed, split, difficulty, key)

    def _world_of(self) -> World:
        task = self.task
        if task is None:
            raise RuntimeError("no task: call reset(task) first")
        if self._world is None or self._world_task is not task:
            self._world = self._generate(task.seed, task.split, task.difficulty, task.params)
            self._world_task = task
            self._optimal = len(self._plan(self._world, None, [], []))
        return self._world

    # ---- episode ----------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        self._world = None
        world = self._world_of()
        self.state = _fresh_state(len(world.facts))
        self.state["entities"] = list(world.question_entities)
        return (
            f"Question: {task.instruction}\n"
            "Answer it from the knowledge base: search[<entity>] opens the page of an entity, "
            "lookup[<key>] reads one key of the open page, calculate[<expression>] does "
            "arithmetic, finish[<answer>] submits your answer and ends the episode.\n"
            f"Actions: {self.action_help}\n"
            "No page is open yet."
        )

    def _step(self, action: str) -> Observation:
        match = _ACTION.fullmatch(action)
        if match is None:
            return self._malformed(action)
        verb, arg = match.group(1).lower(), match.group(2).strip()
        if verb not in _VERBS:
            return self.reject(
                f"Unknown tool {match.group(1)[:40]!r}. The tools are search, lookup, calculate "
                f"and finish. {self._grammar_hint()}",
                "malformed",
            )
        if not arg:
            return self.reject(
                f"The {_ARG_NAME[verb]} is missing between the brackets, "
                f"e.g. {self._example(verb)}.",
                "malformed",
            )
        self.state["calls"][verb] += 1
        world = self._world_of()
        if verb == "search":
            obs = self._search(world, arg)
        elif verb == "lookup":
            obs = self._lookup(world, arg)
        elif verb == "calculate":
            obs = self._calculate(arg)
        else:
            obs = self._finish(world, arg)
        obs.info.update(self._tool_info())
        return obs

    def _search(self, world: World, query: str) -> Observation:
        name = world.index.get(" ".join(query.lower().split()))
        if name is None:
            # "Veltrix Corp (company)" names the kind, as page titles do.
            bare = re.sub(r"\s*\([^()]*\)$", "", query)
            name = world.index.get(" ".join(bare.lower().split()))
        if name is None:
            close = difflib.get_close_matches(
                query.lower()[:80], list(world.index), n=5, cutoff=0.6
            )
            similar = ", ".join(world.index[c] for c in close)
            tail = f"Similar: {similar}." if similar else "Search for a name from the question."
            return self.reject(f"Could not find [{query[:80]}]. {tail}", "invalid_action")
        entity = world.entities[name]
        self.state["page"] = name
        lines = [f"{name} ({entity.kind})", f"{name} is a {entity.kind}."]
        if entity.similar:
            lines[-1] += f" Not to be confused with {' or '.join(entity.similar)}."
        keys = list(entity.values)
        lines.append(f"Keys: {', '.join(keys)} (read one with e.g. lookup[{keys[0]}]).")
        return Observation(text="\n".join(lines))

    def _lookup(self, world: World, key: str) -> Observation:
        page = self.state["page"]
        if page is None:
            return self.reject(
                f"No page is open, so there is nothing to look up. Open one first, e.g. "
                f"{self._example('search')}.",
                "invalid_action",
            )
        entity = world.entities[page]
        norm = "_".join(key.lower().replace("-", " ").split())
        if norm not in entity.values:
            return self.reject(
                f"The page of {page} has no key {key[:60]!r}. Its keys: "
                f"{', '.join(entity.values)}.",
                "invalid_action",
            )
        shown = entity.show(norm)
        fact = f"{page}|{norm}"
        if fact not in self.state["retrieved"]:
            self.state["retrieved"].append(fact)
            if any(f.entity == page and f.key == norm for f in world.facts):
                self.state["found"] += 1
        if isinstance(entity.values[norm], str) and shown not in self.state["entities"]:
            self.state["entities"].append(shown)
        self._remember(shown)
        return Observation(text=f"{norm} of {page}: {shown}")

    def _calculate(self, expression: str) -> Observation:
        try:
            result = format_number(evaluate(expression))
        except CalcError as e:
            return self.reject(f"Could not calculate {expression[:80]!r}: {e}.", "invalid_action")
        norm = normalize_answer(result)
        if norm not in self.state["computed"]:
            self.state["computed"].append(norm)
        self._remember(result)
        return Observation(text=f"{expression} = {result}")

    def _finish(self, world: World, answer: str) -> Observation:
        ok = normalize_answer(answer) == normalize_answer(world.answer)
        self.state["done"] = True
        self.state["solved"] = ok
        verdict = "That is correct." if ok else "That is not correct."
        total = sum(self.state["calls"].values())
        return Observation(
            text=f"You answered {answer[:200]!r}. {verdict}",
            reward=1.0 if ok else 0.0,
            terminated=True,
            info={"success": ok, "tool_overuse": total - self._optimal},
        )

    def _remember(self, value: str) -> None:
        values: list[str] = self.state["values"]
        if value in values:
            values.remove(value)
        values.append(value)

    def _tool_info(self) -> dict[str, Any]:
        calls: dict[str, int] = self.state["calls"]
        return {
            "tool_calls": sum(calls.values()),
            "tool_calls_by_tool": dict(calls),
            "optimal_tool_calls": self._optimal,
        }

    def _malformed(self, action: str) -> Observation:
        bare = _BARE.fullmatch(action)
        if bare is not None and bare.group(2) and "[" not in action and "]" not in action:
            verb = bare.group(1).lower()
            fixed = f"{verb}[{bare.group(2).strip('() ')[:60]}]"
            text = f"Put the {_ARG_NAME[verb]} in square brackets, like {fixed}."
        else:
            text = (
                f"Could not parse {action[:60]!r} as an action: write exactly one tool call, "
                f"like {self._example('search')}. {self._grammar_hint()}"
            )
        return self.reject(text, "malformed")

    def _example(self, verb: str) -> str:
        for action in self.available_actions():
            if action.startswith(verb + "["):
                return action
        return f"{verb}[<{_ARG_NAME[verb]}>]"

    def third_party_spans(self, text: str) -> list[tuple[int, int]]:
        """Pages are documents of the knowledge base: the description of a page just
        opened and the value a lookup read (where ``inject_instruction`` plants)."""
        page = self.state["page"]
        if page is None or self.state["done"]:
            return []
        intro = f"\n{page} is a {self._world_of().entities[page].kind}."
        at = text.find(intro)
        if at >= 0:
            end = text.find("\n", at + 1)
            return [(at + 1, end if end >= 0 else len(text))]
        read = re.fullmatch(r"\w+ of " + re.escape(page) + r": (.+)", text, re.DOTALL)
        return [(read.start(1), read.end(1))] if read else []

    # ---- oracle and measures -------------------------------------------------------

    @staticmethod
    def _plan(
        world: World, page: str | None, retrieved: list[str], computed: list[str]
    ) -> list[str]:
        """The expert's remaining actions from a state.

        Missing facts in question order, each looked up as soon as its page is
        open (so no page is opened twice), then the calculation if the answer
        was not computed yet, then the answer.
        """
        done = set(retrieved)
        steps: list[str] = []
        while True:
            pending = [f for f in world.facts if f"{f.entity}|{f.key}" not in done]
            if not pending:
                break
            here = next((f for f in pending if f.entity == page), None)
            if here is not None:
                steps.append(f"lookup[{here.key}]")
                done.add(f"{here.entity}|{here.key}")
            else:
                page = pending[0].entity
                steps.append(f"search[{page}]")
        if world.calc is not None and normalize_answer(world.answer) not in computed:
            steps.append(f"calculate[{world.calc}]")
        steps.append(f"finish[{world.answer}]")
        return steps

    def expert(self) -> str:
        s = self.state
        return self._plan(self._world_of(), s["page"], s["retrieved"], s["computed"])[0]

    def progress(self) -> float:
        s = self.state
        if s["solved"]:
            return 1.0
        return s["found"] / (s["n_facts"] + 1)

    def available_actions(self) -> list[str]:
        s = self.state
        if s["done"] or self.task is None:
            return []
        world = self._world_of()
        page = s["page"]
        names: list[str] = list(s["entities"])
        if page is not None:
            names.extend(world.entities[page].similar)
        names = [n for n in dict.fromkeys(names) if n != page][:_MAX_SEARCHES]
        actions = [f"search[{n}]" for n in names]
        if page is not None:
            actions.extend(f"lookup[{k}]" for k in world.entities[page].values)
        if world.calc is not None and s["found"] == s["n_facts"]:
            actions.append(f"calculate[{world.calc}]")
            if world.calc_decoy is not None:
                actions.append(f"calculate[{world.calc_decoy}]")
        candidates: dict[str, str] = {}
        for value in [*s["values"][-_MAX_FINISH_VALUES:], *world.decoys]:
            candidates.setdefault(normalize_answer(value), value)
        actions.extend(f"finish[{v}]" for v in sorted(candidates.values()))
        return actions
