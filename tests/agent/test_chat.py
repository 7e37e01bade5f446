"""The ChatAgent base: the shared prologue, step numbering and timing, endings, cleanup."""

from __future__ import annotations

import time

import pytest

from palaestra.agent import (
    ChatAgent,
    ChatEpisode,
    CodeActAgent,
    EpisodeContext,
    ModelCall,
    ReactAgent,
    ReflexionAgent,
    run_episode,
)
from palaestra.env import ToyEnv
from palaestra.model import ScriptedModel


def test_react_reflexion_and_codeact_share_the_chat_loop() -> None:
    for cls in (ReactAgent, ReflexionAgent, CodeActAgent):
        assert issubclass(cls, ChatAgent)
        assert "run" not in vars(cls) or cls is ReflexionAgent  # Reflexion only adds reflecting
        assert "decide" not in vars(cls)


def test_a_chat_agent_must_state_its_hooks() -> None:
    class Incomplete(ChatAgent[ChatEpisode]):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # pyright: ignore[reportAbstractUsage]


def test_env_time_is_charged_once() -> None:
    """A format error after a step takes no environment time (it used to repeat the step's)."""
    env = ToyEnv(on_step=lambda action: time.sleep(0.02))
    model = ScriptedModel(["Action: inc", "no action", "Action: inc", "Action: stop"])
    steps, end = run_episode(ReactAgent(), env, env.make_task(0), model)
    assert end.outcome == "success"
    assert [s.format_error is not None for s in steps] == [False, True, False, False]
    assert steps[1].env_seconds == 0.0
    assert all(s.env_seconds >= 0.02 for s in (steps[0], steps[2], steps[3]))
    assert [s.index for s in steps] == [0, 1, 2, 3]


def test_the_step_limit_counts_format_errors() -> None:
    env = ToyEnv()
    steps, end = run_episode(
        ReactAgent(max_steps=3), env, env.make_task(0), ScriptedModel(lambda conv: "?")
    )
    assert (end.outcome, end.limit_reason, len(steps)) == ("limit", "steps", 3)
    roles = [m.role for m in end.messages]
    assert roles == ["system", "user"] + ["assistant", "user"] * 3


class Tracked(ReactAgent):
    """Records what the hooks saw."""

    def __init__(self) -> None:
        super().__init__(max_steps=5)
        self.closed: list[str] = []
        self.contexts: list[EpisodeContext] = []

    def extra_system(self, task: object) -> str:
        return "EXTRA NOTE"

    def end_metadata(self, ep: ChatEpisode) -> dict[str, object]:
        return {"turns": ep.turns}

    def close_episode(self, ep: ChatEpisode) -> None:
        self.contexts.append(ep.ctx)
        self.closed.append(ep.ctx.task.task_id)


def test_hooks_extra_system_metadata_and_close_on_a_finished_episode() -> None:
    agent, env = Tracked(), ToyEnv()
    task = env.make_task(0)
    _, end = run_episode(agent, env, task, ScriptedModel(["Action: inc"] * 2 + ["Action: stop"]))
    assert end.outcome == "success" and end.metadata == {"turns": 3}
    assert end.messages[0].content.endswith("\n\nEXTRA NOTE")
    assert agent.closed == [task.task_id]


def test_close_episode_runs_when_the_driver_stops_the_loop_mid_turn() -> None:
    agent, env = Tracked(), ToyEnv()
    task = env.make_task(0)
    loop = agent.run(env, task, attempt=2)
    assert isinstance(next(loop), ModelCall)
    assert agent.closed == []
    loop.close()  # e.g. the engine's wall-time limit
    assert agent.closed == [task.task_id]
    assert agent.contexts[0].attempt == 2


def test_episode_context_is_still_importable_from_react() -> None:
    from palaestra.agent._react import EpisodeContext as Old

    assert Old is EpisodeContext
