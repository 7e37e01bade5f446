"""The agent registry: string ids → agent factories, with third-party agents from entry points.

``register_agent("acme/planner", "acme_agents.planner:PlannerAgent")`` binds an
id to an entry point — a ``"module:attr"`` string naming an :class:`Agent`
subclass or a function returning an agent, imported only when the id is built
(or a callable). ``get_agent("react", max_steps=20)`` builds one; the agent's
``name`` is the id it was built from, so episodes record the registered id.
An id's meaning never changes: registering it again with a different entry
point is an error unless ``override=True``.

Third-party packages register agents through the ``palaestra.agents``
entry-point group, as environments do through ``palaestra.envs``; here each
entry point *is* one registration — its name the agent id, its value the
``"module:attr"`` — so a plugin's module is imported only when its agent is
built::

    [project.entry-points."palaestra.agents"]
    "acme/planner" = "acme_agents.planner:PlannerAgent"

Plugins are read once, on first use of the registry. One whose id is malformed
or already taken (a built-in's) is skipped with a warning and breaks nothing
else; one whose module fails to import fails only when its id is built, with
an error naming the id and the module.
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from palaestra._config import load_entry_point
from palaestra.agent._core import Agent

ENTRY_POINT_GROUP = "palaestra.agents"
#: ``react``, ``search:mcts``, ``codeact-expert``, ``acme/planner``: lower-case, optional namespace.
_ID_RE = re.compile(r"^(?:[a-z0-9][\w.-]*/)?[a-z0-9][\w.:-]*$")

AgentFactory = Callable[..., Agent]

#: The agents that ship with Palaestra, in the order ``AGENTS`` lists them.
_BUILTIN: dict[str, str] = {
    "react": "palaestra.agent._react:ReactAgent",
    "reflexion": "palaestra.agent._reflexion:ReflexionAgent",
    "expert": "palaestra.agent._baseline_agents:ExpertAgent",
    "random": "palaestra.agent._baseline_agents:RandomAgent",
    "codeact": "palaestra.agent._codeact:CodeActAgent",
    "codeact-expert": "palaestra.agent._baseline_agents:CodeActExpertAgent",
    "search:best-first": "palaestra.agent.search:BestFirstSearchAgent",
    "search:mcts": "palaestra.agent.search:MCTSAgent",
    # Scripted safety bounds (issue 17): refuses everything; obeys injected instructions.
    "always-refuse": "palaestra.agent._safety_agents:AlwaysRefuseAgent",
    "obedient": "palaestra.agent._attack_agents:ObedientAgent",
}


@dataclass(frozen=True)
class AgentSpec:
    """What ``get_agent(id)`` builds."""

    id: str
    entry_point: str | AgentFactory
    #: Fixed constructor arguments (``get_agent``'s keyword arguments override them).
    kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    #: Where the registration came from (``"palaestra"`` or an entry point's distribution).
    source: str = "palaestra"

    def load(self) -> AgentFactory:
        """The factory (class or function), imported now if the entry point is a string."""
        if callable(self.entry_point):
            return self.entry_point
        return load_entry_point(self.entry_point, f"agent {self.id!r}")

    def make(self, **kwargs: Any) -> Agent:
        """Build the agent: ``kwargs`` over the registered ones; its ``name`` becomes the id."""
        agent = self._checked(self.load()(**{**self.kwargs, **kwargs}))
        agent.name = self.id
        return agent

    def _checked(self, agent: object) -> Agent:
        # A plugin's entry point may name anything; say which one built what.
        if not isinstance(agent, Agent):
            raise TypeError(
                f"agent {self.id!r}: {self.entry_point!r} built a {type(agent).__name__}, "
                "not a palaestra.agent.Agent"
            )
        return agent


_REGISTRY: dict[str, AgentSpec] = {}
_plugins_loaded = False


def _add(spec: AgentSpec, override: bool) -> AgentSpec:
    if not _ID_RE.match(spec.id):
        raise ValueError(
            f"agent id {spec.id!r} is malformed: use lower-case letters, digits and '-_.:', "
            "optionally after a 'namespace/' (e.g. 'acme/planner')"
        )
    if isinstance(spec.entry_point, str) and ":" not in spec.entry_point:
        raise ValueError(
            f"entry_point {spec.entry_point!r} must look like 'package.module:ClassName'"
        )
    old = _REGISTRY.get(spec.id)
    if (
        old is not None
        and not override
        and (old.entry_point, old.kwargs) != (spec.entry_point, spec.kwargs)
    ):
        raise ValueError(
            f"agent id {spec.id!r} is already registered to {old.entry_point!r} "
            f"(from {old.source}); ids never change meaning: register a new id, "
            "or pass override=True"
        )
    _REGISTRY[spec.id] = spec
    return spec


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for id, target in _BUILTIN.items():
        _add(AgentSpec(id, target), override=False)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = ep.dist.name if ep.dist is not None else f"plugin:{ep.name}"
        try:
            if source == "palaestra":  # reserved for what ships with Palaestra
                raise ValueError("the source 'palaestra' is reserved")
            _add(AgentSpec(ep.name, f"{ep.module}:{ep.attr}", source=source), override=False)
        except ValueError as e:  # a bad plugin must not break the built-in agents
            warnings.warn(
                f"{ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}) was skipped: {e}",
                stacklevel=2,
            )


def register_agent(
    id: str,
    entry_point: str | AgentFactory,
    *,
    kwargs: dict[str, Any] | None = None,
    override: bool = False,
    source: str = "palaestra",
) -> AgentSpec:
    """Register an agent under ``id`` (``"react"``; a third party's ``"acme/planner"``).

    ``entry_point`` is a ``"module:attr"`` string (imported when the id is
    built) or a callable; ``kwargs`` are fixed constructor arguments.
    """
    _load_plugins()  # so a clash with a built-in or a plugin is reported here, not later
    return _add(AgentSpec(id, entry_point, dict(kwargs or {}), source), override)


def agent_registry() -> dict[str, AgentSpec]:
    """All registered agents by id, built-ins first (in ``AGENTS`` order), then plugins."""
    _load_plugins()
    return dict(_REGISTRY)


def close_agent_ids(id: str, known: list[str], n: int = 3) -> list[str]:
    """Registered ids that ``id`` was probably meant to be, best first."""
    close = difflib.get_close_matches(id, known, n=n, cutoff=0.6)
    # "planner" → "acme/planner": compare without namespaces too
    bare = {k.rsplit("/", 1)[-1]: k for k in known if "/" in k}
    close += [bare[m] for m in difflib.get_close_matches(id, list(bare), n=n, cutoff=0.6)]
    return list(dict.fromkeys(close))[:n]


def unknown_agent_message(id: str) -> str:
    """``unknown agent 'codact' (did you mean codeact?); choose one of react, reflexion, ...``"""
    known = list(agent_registry())
    close = close_agent_ids(id, known)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown agent {id!r}{hint}; choose one of {', '.join(known)}"


def agent_spec(id: str) -> AgentSpec:
    """The registration of ``id``; a ``ValueError`` naming close matches when unknown."""
    reg = agent_registry()
    if id in reg:
        return reg[id]
    raise ValueError(unknown_agent_message(id))


def get_agent(name: str, **kwargs: Any) -> Agent:
    """Build the agent registered as ``name`` (``react``, ``codeact``, ``search:mcts``, ...).

    Keyword arguments go to its constructor, over the registered ``kwargs``.
    """
    return agent_spec(name).make(**kwargs)


class AgentTable(Mapping[str, AgentFactory]):
    """``AGENTS``: a live view of the registry, id → factory (plugins included).

    Kept from when ``AGENTS`` was a plain dict: ``name in AGENTS`` and listing
    the ids import nothing; ``AGENTS[id]`` imports the factory (with the
    registered ``kwargs`` bound); ``AGENTS[id] = cls`` registers ``cls``
    (replacing the id, as a dict assignment did). Prefer :func:`get_agent` and
    :func:`register_agent`.
    """

    def __getitem__(self, id: str) -> AgentFactory:
        spec = agent_registry().get(id)
        if spec is None:
            raise KeyError(id)
        factory = spec.load()
        return functools.partial(factory, **spec.kwargs) if spec.kwargs else factory

    def __setitem__(self, id: str, factory: AgentFactory) -> None:
        register_agent(id, factory, override=True)

    def __contains__(self, id: object) -> bool:
        return id in agent_registry()

    def __iter__(self) -> Iterator[str]:
        return iter(agent_registry())

    def __len__(self) -> int:
        return len(agent_registry())

    def __repr__(self) -> str:
        return f"AGENTS({', '.join(agent_registry())})"


AGENTS = AgentTable()
