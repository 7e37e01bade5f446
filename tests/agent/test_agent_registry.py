"""The agent registry: string ids, lazy entry points, close-match errors, third-party packages."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import palaestra.agent._registry as reg
from palaestra.agent import (
    AGENTS,
    ENTRY_POINT_GROUP,
    CodeActAgent,
    ReactAgent,
    ReflexionAgent,
    agent_registry,
    get_agent,
    register_agent,
    run_episode,
)
from palaestra.env import ToyEnv
from palaestra.model import ScriptedModel
from palaestra.rollout import RolloutEngine

BUILTIN = [
    "react",
    "reflexion",
    "expert",
    "random",
    "codeact",
    "codeact-expert",
    "search:best-first",
    "search:mcts",
]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry read afresh (built-ins and whatever plugins are on sys.path), then restored."""
    monkeypatch.setattr(reg, "_REGISTRY", {})
    monkeypatch.setattr(reg, "_plugins_loaded", False)
    yield


def test_builtin_agents_keep_their_ids_order_and_classes() -> None:
    assert list(AGENTS)[: len(BUILTIN)] == BUILTIN
    assert "react" in AGENTS and "nope" not in AGENTS and len(AGENTS) >= len(BUILTIN)
    assert AGENTS["react"] is ReactAgent and AGENTS["codeact"] is CodeActAgent
    assert all(agent_registry()[i].source == "palaestra" for i in BUILTIN)
    with pytest.raises(KeyError):
        AGENTS["nope"]


def test_get_agent_passes_kwargs_and_names_the_agent_by_its_id() -> None:
    agent = get_agent("reflexion", max_steps=3, max_reflections=1)
    assert isinstance(agent, ReflexionAgent)
    assert (agent.name, agent.max_steps, agent.max_reflections) == ("reflexion", 3, 1)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("codact", "codeact"), ("reflection", "reflexion"), ("search:mtcs", "search:mcts")],
)
def test_unknown_id_names_close_matches_and_every_id(typo: str, meant: str) -> None:
    with pytest.raises(ValueError, match=f"unknown agent '{typo}'") as info:
        get_agent(typo)
    message = str(info.value)
    assert f"did you mean {meant}" in message
    assert message.endswith("choose one of " + ", ".join(agent_registry()))


def test_nothing_close_gives_no_guess() -> None:
    with pytest.raises(ValueError, match="unknown agent 'zzzzzz'; choose one of react"):
        get_agent("zzzzzz")


def test_ids_never_change_meaning(fresh: None) -> None:
    register_agent("acme/act-only", ReactAgent, kwargs={"prompt": "act"})
    register_agent("acme/act-only", ReactAgent, kwargs={"prompt": "act"})  # the same: fine
    with pytest.raises(ValueError, match="already registered"):
        register_agent("react", "acme_agents:React")
    with pytest.raises(ValueError, match="already registered"):
        register_agent("acme/act-only", ReactAgent)  # other kwargs: another meaning
    register_agent("acme/act-only", ReactAgent, override=True)
    assert agent_registry()["acme/act-only"].kwargs == {}


@pytest.mark.parametrize("bad", ["React", "has space", "/x", "a/b/c", ""])
def test_malformed_ids_are_rejected(fresh: None, bad: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        register_agent(bad, ReactAgent)


def test_entry_point_string_must_name_an_attribute(fresh: None) -> None:
    with pytest.raises(ValueError, match="module:ClassName"):
        register_agent("acme/x", "acme_agents.x")


def test_registered_kwargs_are_defaults_that_get_agent_overrides(fresh: None) -> None:
    register_agent("acme/short", "palaestra.agent:ReactAgent", kwargs={"max_steps": 2})
    built = [get_agent("acme/short"), get_agent("acme/short", max_steps=5), AGENTS["acme/short"]()]
    assert [a.max_steps for a in built if isinstance(a, ReactAgent)] == [2, 5, 2]
    assert get_agent("acme/short").name == "acme/short"


def test_string_entry_points_import_only_when_built(fresh: None) -> None:
    register_agent("acme/ghost", "acme_no_such_module.agents:Ghost")
    assert "acme/ghost" in AGENTS  # listing imports nothing
    with pytest.raises(
        ImportError, match=r"agent 'acme/ghost' needs 'acme_no_such_module\.agents'"
    ):
        get_agent("acme/ghost")


def test_a_factory_must_build_an_agent(fresh: None) -> None:
    register_agent("acme/not-an-agent", lambda: "hello")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"built a str, not a palaestra\.agent\.Agent"):
        get_agent("acme/not-an-agent")


def test_assigning_into_agents_still_registers(fresh: None) -> None:
    AGENTS["acme/mine"] = ReactAgent  # how agents were added when AGENTS was a dict
    assert isinstance(get_agent("acme/mine"), ReactAgent)


# ---- a third-party agent package, installed for the test ----------------------------------

#: The package: a ChatAgent whose replies are bare actions, one per line (no "Action:").
PACKAGE = '''
from palaestra.agent import ChatAgent, ChatEpisode
from palaestra.model import ChatMessage


class BareAgent(ChatAgent[ChatEpisode]):
    """Replies are the action alone."""

    needs_model = True

    def new_episode(self, env, ctx, first):
        return ChatEpisode(env, ctx, first)

    def instructions(self, ep):
        return "Reply with one action: " + ep.env.action_help

    def act(self, ep, completion, step):
        action = completion.text.strip().splitlines()[0] if completion.text.strip() else ""
        if not action:
            yield self.format_error(ep, step, "empty reply", "Reply with an action.")
            return None
        obs = ep.env.step(action)
        ep.messages.append(ChatMessage(role="user", content=obs.text))
        yield self.observed(ep, step, action, obs, 0.0)
        return self.ending(ep)


def not_an_agent():
    return 42
'''

ENTRY_POINTS = f"""
[{ENTRY_POINT_GROUP}]
acme/bare = acme_agents:BareAgent
acme/odd = acme_agents:not_an_agent
acme/broken = acme_agents_missing:Nothing
react = acme_agents:BareAgent
Acme/Upper = acme_agents:BareAgent
"""


@pytest.fixture
def acme_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh: None) -> Iterator[Path]:
    """``acme-agents`` 0.1, laid out on sys.path as pip installs a wheel (package + dist-info)."""
    (tmp_path / "acme_agents").mkdir()
    (tmp_path / "acme_agents" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    info = tmp_path / "acme_agents-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-agents\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_agents", None)


def test_a_third_party_package_registers_agents_through_entry_points(acme_package: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        ids = agent_registry()
    warned = " ".join(str(w.message) for w in caught)
    # a plugin may not take a built-in's id, nor a malformed one; the rest still load
    assert "'react'" in warned and "already registered" in warned and "'Acme/Upper'" in warned
    assert (
        ids["react"].source == "palaestra" and ids["react"].entry_point != "acme_agents:BareAgent"
    )
    assert ids["acme/bare"].source == "acme-agents"
    assert list(ids)[: len(BUILTIN)] == BUILTIN  # plugins come after the built-ins
    assert "acme_agents" not in sys.modules  # registered, not imported

    agent = get_agent("acme/bare", max_steps=6)
    assert "acme_agents" in sys.modules and agent.name == "acme/bare"
    env = ToyEnv()
    task = env.make_task(0)  # target 2
    steps, end = run_episode(agent, env, task, ScriptedModel(["inc", "", "inc", "stop"]))
    assert end.outcome == "success"
    assert [s.action for s in steps] == ["inc", None, "inc", "stop"]
    assert steps[1].format_error == "empty reply" and [s.index for s in steps] == [0, 1, 2, 3]
    # through the engine, the episode records the plugin's id
    [ep] = RolloutEngine(agent, ToyEnv, ScriptedModel(["inc", "inc", "stop"])).run([task])
    assert (ep.agent, ep.outcome) == ("acme/bare", "success")


def test_a_broken_plugin_fails_only_when_built(acme_package: Path) -> None:
    with pytest.warns(UserWarning):
        agent_registry()
    with pytest.raises(ImportError, match="agent 'acme/broken' needs 'acme_agents_missing'"):
        get_agent("acme/broken")
    with pytest.raises(TypeError, match=r"'acme/odd'.*built a int"):
        get_agent("acme/odd")
    assert get_agent("react").name == "react"  # the built-ins are untouched
