"""How each AgentGym environment server speaks: one :class:`Dialect` per server, in a table.

AgentGym's servers (``agentenv-webshop``, ``-alfworld``, ``-sciworld``,
``-babyai``, ``-textcraft``; WooooDyy/AgentGym) share the shape ``POST
/create`` → an id, ``POST /reset``, ``POST /step`` → observation, reward,
done, but differ in field names and in what they report. Read from their
servers (``agentenv_*/server.py``, ``model.py``, ``environment.py``) and
clients (``agentenv/agentenv/envs/*.py``):

==========  ========  ===========================  ===================  =====================
server      id field  reset body                   step text field      available actions
==========  ========  ===========================  ===================  =====================
webshop     env_idx   {env_idx, session_id}        state                GET /available_actions
                      → ``[observation, null]``                          {has_search_bar, clickables}
alfworld    id        {id, game, world_type}       observation          in reset/step payloads
sciworld    id        {id, data_idx}               observation          none (templates only)
babyai      id        {id, data_idx}               observation          in the observation text
textcraft   id        {id, data_idx}               observation          none
==========  ========  ===========================  ===================  =====================

``/create`` answers a bare int (webshop) or ``{"id": n}``; TextCraft's
``/create`` requires a JSON body ``{commands, goal}`` (both nullable).
Failures come back as HTTP 200 with ``{"error": message}`` (all but
webshop, which answers 500). Scores: webshop pays a [0, 1] match score when
the agent buys; alfworld 1 when won; sciworld a 0-100 ``score`` (negative on
a failed task); babyai a reward in (0, 1] on success, and ``done`` only on
success; textcraft 1 when the goal item is crafted or got.

Deviation: where a server lists every valid action (webshop, alfworld,
babyai) an action outside the list is rejected here, without a request, so
the server's state (and its step counter) is untouched, as our contract
requires; where it does not (sciworld, textcraft) the action is sent and an
answer that starts with the simulator's own refusal text is reported as
invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Payload = Mapping[str, Any]

#: Where a dialect's valid actions come from (see ``AgentGymEnv._ACTION_SOURCES``).
ActionSource = Literal["webshop_route", "payload", "text", "fixed"]

_WEBSHOP_ACTION = re.compile(r"^(search|click)\[(.*)\]$", re.DOTALL)
_BABYAI_ACTIONS = re.compile(r"Available actions: \[(.*)\]\s*$", re.DOTALL)


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _num(payload: Payload, key: str) -> float:
    value = payload.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def check_listed(action: str, listed: list[str]) -> tuple[str | None, str]:
    """``(canonical action, "")`` if ``action`` is listed (case-insensitively), else ``(None, why)``."""
    by_lower = {a.lower(): a for a in listed}
    found = by_lower.get(action.lower())
    if found is not None:
        return found, ""
    return None, "That action is not available here."


def check_webshop(action: str, listed: list[str]) -> tuple[str | None, str]:
    """WebShop's own rule: ``search[kw]`` where a search bar is shown, ``click[x]`` on a listed x."""
    m = _WEBSHOP_ACTION.match(action)
    if m is None:
        return None, "Actions look like search[keywords] or click[value]."
    verb, arg = m.group(1), m.group(2).strip()
    if verb == "search":
        if not any(a.startswith("search[") for a in listed):
            return None, "There is no search bar on this page; click one of the buttons."
        if not arg:
            return None, "search[] needs keywords, e.g. search[red cotton shirt]."
        return f"search[{arg}]", ""
    clicks = {a[6:-1].lower(): a for a in listed if a.startswith("click[")}
    if arg.lower() not in clicks:
        return None, f"There is no clickable {arg!r} on this page."
    return clicks[arg.lower()], ""


def check_nothing(action: str, listed: list[str]) -> tuple[str | None, str]:
    """The server decides (it lists no complete action set)."""
    return action, ""


def babyai_actions(text: str) -> list[str]:
    """The actions BabyAI's server appends to its observation: ``Available actions: ["a", "b"]``."""
    m = _BABYAI_ACTIONS.search(text)
    if m is None:
        return []
    return re.findall(r'"([^"]*)"', m.group(1))


@dataclass(frozen=True)
class Dialect:
    """The wire format and scoring of one AgentGym environment server."""

    name: str
    title: str
    #: The AgentGym package serving it and how it is started (for error messages).
    server: str
    #: Field naming the environment instance in JSON bodies and query strings.
    id_key: str
    #: JSON body of ``POST /create`` (``None``: no body).
    create_body: dict[str, Any] | None
    #: JSON body of ``POST /reset`` for a task index (the id field is added).
    reset_body: Callable[[int], dict[str, Any]]
    #: First observation text from the ``/reset`` answer (``None``: ask ``GET /observation``).
    reset_text: Callable[[Any], str | None]
    #: Key of the observation text in the ``/step`` answer.
    step_text_key: str
    actions: ActionSource
    #: Validates an action against the listed ones: ``(action to send, feedback if invalid)``.
    check: Callable[[str, list[str]], tuple[str | None, str]]
    #: Progress in [0, 1] from a reset/step answer and its done flag.
    progress: Callable[[Payload, bool], float]
    #: Whether a terminal answer means the task was solved.
    success: Callable[[Payload, bool], bool]
    description: str
    action_help: str
    action_verbs: tuple[str, ...]
    #: Actions that are always valid, listed when the server lists none.
    fixed_actions: tuple[str, ...] = ()
    #: Observation prefixes with which the simulator refuses an action (sent actions only).
    invalid_prefixes: tuple[str, ...] = ()
    #: Route that frees the instance on the server, if it has one.
    close_path: str | None = None
    #: Extra actions the server accepts but does not list.
    also_valid: tuple[str, ...] = field(default=())


def _text_at(key: str) -> Callable[[Any], str | None]:
    def get(payload: Any) -> str | None:
        value = payload.get(key) if isinstance(payload, dict) else None
        return value if isinstance(value, str) else None

    return get


def _webshop_reset_text(payload: Any) -> str | None:
    # WebShop's /reset answers the gym tuple (observation, None).
    if isinstance(payload, list) and payload and isinstance(payload[0], str):
        return payload[0]
    return None


def _sciworld_reset_text(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    desc, obs = payload.get("task_description"), payload.get("observation")
    if isinstance(desc, str) and isinstance(obs, str):
        return f"{desc}\n{obs}"
    return None


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            name="webshop",
            title="WebShop",
            server="agentenv-webshop (`webshop --port 36001`)",
            id_key="env_idx",
            create_body=None,
            reset_body=lambda idx: {"session_id": idx},
            reset_text=_webshop_reset_text,
            step_text_key="state",
            actions="webshop_route",
            check=check_webshop,
            progress=lambda p, done: _clip(_num(p, "reward")) if done else 0.0,
            success=lambda p, done: done and _num(p, "reward") >= 1.0,
            description="WebShop (Yao et al., 2022) behind AgentGym's env server: find and buy "
            "the product that matches an instruction on a simulated shopping site.",
            action_help="search[keywords] | click[value] (value: a button, link or option on "
            "the page, as listed)",
            action_verbs=("search", "click"),
            close_path="close",
        ),
        Dialect(
            name="alfworld",
            title="ALFWorld",
            server="agentenv-alfworld (`alfworld --port 36002`)",
            id_key="id",
            create_body=None,
            reset_body=lambda idx: {"game": idx, "world_type": "Text"},
            reset_text=_text_at("observation"),
            step_text_key="observation",
            actions="payload",
            check=check_listed,
            progress=lambda p, done: _clip(_num(p, "reward")),
            success=lambda p, done: _num(p, "reward") >= 1.0,
            description="ALFWorld (Shridhar et al., 2021) behind AgentGym's env server: "
            "household tasks in TextWorld (find, heat, clean, cool, put objects).",
            action_help="go to X | open X | close X | take A from B | put A in/on B | "
            "heat/cool/clean A with B | use X | examine X | inventory | look",
            action_verbs=("go", "open", "close", "take", "put", "heat", "cool", "clean", "use"),
            invalid_prefixes=("Nothing happens.",),
            close_path="close",
        ),
        Dialect(
            name="sciworld",
            title="ScienceWorld",
            server="agentenv-sciworld (`sciworld --port 36003`)",
            id_key="id",
            create_body=None,
            reset_body=lambda idx: {"data_idx": idx},
            reset_text=_sciworld_reset_text,
            step_text_key="observation",
            actions="fixed",
            check=check_nothing,
            progress=lambda p, done: _clip(_num(p, "score") / 100.0),
            success=lambda p, done: _num(p, "score") >= 100.0,
            description="ScienceWorld (Wang et al., 2022) behind AgentGym's env server: "
            "elementary-school science experiments in a text simulator, scored 0-100.",
            action_help="open/close OBJ | activate/deactivate OBJ | connect OBJ to OBJ | "
            "use OBJ [on OBJ] | look around | look at OBJ | look in OBJ | read OBJ | "
            "move OBJ to OBJ | pick up OBJ | put down OBJ | pour OBJ into OBJ | "
            "dunk OBJ into OBJ | mix OBJ | go to LOC | eat OBJ | focus on OBJ | wait | wait1 | "
            "task | inventory",
            action_verbs=("open", "close", "activate", "use", "look", "move", "pick", "go"),
            fixed_actions=("look around", "inventory", "task"),
            invalid_prefixes=("No known action matches that input",),
        ),
        Dialect(
            name="babyai",
            title="BabyAI",
            server="agentenv-babyai (`babyai --port 36004`)",
            id_key="id",
            create_body=None,
            reset_body=lambda idx: {"data_idx": idx},
            reset_text=_text_at("observation"),
            step_text_key="observation",
            actions="text",
            check=check_listed,
            # BabyAI's server sets done only on success, and pays its (time-discounted)
            # reward there: solved is progress 1.0.
            progress=lambda p, done: 1.0 if done else _clip(_num(p, "reward")),
            success=lambda p, done: done,
            description="BabyAI (Chevalier-Boisvert et al., 2019) behind AgentGym's env server: "
            "grid-world instructions (go to, pick up, open, unlock) described in text.",
            action_help="turn left | turn right | move forward | go to <obj> <id> | "
            "pick up <obj> <id> | go through <door> <id> | toggle and go through <door> <id> | "
            "toggle (as listed under 'Available actions')",
            action_verbs=("turn", "move", "go", "pick", "toggle"),
            also_valid=("check available actions",),
        ),
        Dialect(
            name="textcraft",
            title="TextCraft",
            server="agentenv-textcraft (`textcraft --port 36005`)",
            id_key="id",
            create_body={"commands": None, "goal": None},
            reset_body=lambda idx: {"data_idx": idx},
            reset_text=_text_at("observation"),
            step_text_key="observation",
            actions="fixed",
            check=check_nothing,
            progress=lambda p, done: _clip(_num(p, "reward")),
            success=lambda p, done: _num(p, "reward") >= 1.0,
            description="TextCraft (Prasad et al., 2023, ADaPT) behind AgentGym's env server: "
            "craft a Minecraft item from given recipes, getting base items first.",
            action_help="get N ITEM | craft N ITEM using N ITEM, N ITEM | inventory",
            action_verbs=("get", "craft", "inventory"),
            fixed_actions=("inventory",),
            invalid_prefixes=("Could not ", "Wrong item format"),
            close_path="close",
        ),
    )
}
