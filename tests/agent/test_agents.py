"""Agent loops with the scripted model: parsing, format errors, loops, limits, Reflexion, baselines."""

from __future__ import annotations

import pytest

from palaestra.agent import (
    ExpertAgent,
    RandomAgent,
    ReactAgent,
    ReflexionAgent,
    fit_history,
    get_agent,
    parse_react,
    run_episode,
)
from palaestra.env import ToyEnv
from palaestra.model import ChatMessage, ScriptedModel
from palaestra.trajectory import Step


@pytest.mark.parametrize(
    ("text", "thought", "action"),
    [
        ("Thought: go up\nAction: inc", "go up", "inc"),
        ("thought: hmm\naction:   `stop`  ", "hmm", "stop"),
        ("Action: inc\nAction: dec", None, "inc"),
        ("Thought: multi\nline\nAction: dec\nObservation: x", "multi\nline", "dec"),
    ],
)
def test_parse_react(text: str, thought: str | None, action: str) -> None:
    p = parse_react(text)
    assert (p.thought, p.action, p.error) == (thought, action, None)


@pytest.mark.parametrize("text", ["I will increase.", "Thought: x\nAction:   ", ""])
def test_parse_react_errors(text: str) -> None:
    p = parse_react(text)
    assert p.action is None and p.error


def test_react_solves_with_scripted_model_and_records_everything() -> None:
    env = ToyEnv()
    task = env.make_task(0)  # target 2
    model = ScriptedModel(
        ["Thought: up\nAction: inc", "Action: inc", "Thought: there\nAction: stop"]
    )
    steps, end = run_episode(ReactAgent(), env, task, model)
    assert end.outcome == "success"
    assert [s.action for s in steps] == ["inc", "inc", "stop"]
    assert steps[-1].reward == 1.0 and steps[-1].terminated and steps[-1].progress == 1.0
    assert steps[0].thought == "up" and steps[0].prompt_tokens > 0
    # the conversation alternates and ends with the last observation
    roles = [m.role for m in end.messages]
    assert roles == ["system", "user"] + ["assistant", "user"] * 3
    assert "inc | dec | stop" in end.messages[0].content
    assert task.instruction in end.messages[1].content
    # the model saw the whole history at the last call
    assert [m.content for m in model.calls[-1]][-1] == "You are at 2."


def test_format_error_is_fed_back_and_counted() -> None:
    env = ToyEnv()
    model = ScriptedModel(["I think I should go up", "Action: inc", "Action: inc", "Action: stop"])
    steps, end = run_episode(ReactAgent(), env, env.make_task(0), model)
    assert end.outcome == "success"
    assert steps[0].format_error == "no 'Action:' line" and steps[0].action is None
    assert "did not contain a valid action" in steps[0].observation
    assert model.calls[1][-1].content == steps[0].observation  # the feedback reached the model
    assert steps[1].repeated_action is False and steps[2].repeated_action is True


def test_invalid_action_is_observation_and_step_limit_is_limit() -> None:
    env = ToyEnv()
    model = ScriptedModel(lambda conv: "Action: fly")
    steps, end = run_episode(ReactAgent(max_steps=4), env, env.make_task(0), model)
    assert end.outcome == "limit" and end.limit_reason == "steps"
    assert len(steps) == 4 and all(s.invalid_action for s in steps)
    assert all(s.repeated_action for s in steps[1:])


def test_expert_and_random_agents_need_no_model() -> None:
    env = ToyEnv()
    task = env.make_task(1, difficulty="hard")
    steps, end = run_episode(ExpertAgent(), env, task)
    assert end.outcome == "success" and steps[-1].action == "stop"
    assert all(m.content.startswith("Thought:") for m in end.messages if m.role == "assistant")
    a = [s.action for s in run_episode(RandomAgent(seed=1), env, task)[0]]
    b = [s.action for s in run_episode(RandomAgent(seed=1), env, task)[0]]
    c = [s.action for s in run_episode(RandomAgent(seed=2), env, task, attempt=1)[0]]
    assert a == b and a != c


def test_react_needs_a_model() -> None:
    env = ToyEnv()
    with pytest.raises(ValueError, match="needs a model"):
        run_episode(ReactAgent(), env, env.make_task(0))


def test_reflexion_reflects_on_failure_and_uses_memory_next_attempt() -> None:
    env = ToyEnv()
    task = env.make_task(0)

    def script(conv: list[ChatMessage]) -> str:
        if "You failed this task" in conv[-1].content:
            return "I went down instead of up."
        return "Action: dec" if "Reflections" not in conv[0].content else "Action: inc"

    agent = ReflexionAgent(max_steps=3)
    _, first = run_episode(agent, env, task, ScriptedModel(script))
    assert first.outcome == "limit" and first.metadata["reflection"] == "I went down instead of up."
    model = ScriptedModel(script)
    _, second = run_episode(agent, env, task, model, attempt=1)
    assert "I went down instead of up." in model.calls[0][0].content
    assert second.outcome == "limit"  # 3 x inc never stops, but it went the right way
    assert env.unwrapped.state["pos"] == 3  # type: ignore[attr-defined]


def test_fit_history_keeps_system_instruction_and_recent_turns() -> None:
    msgs = [ChatMessage(role="system", content="S" * 40), ChatMessage(role="user", content="TASK")]
    for i in range(20):
        msgs += [
            ChatMessage(role="assistant", content=f"Action: a{i} " + "x" * 36),
            ChatMessage(role="user", content=f"obs {i} " + "y" * 36),
        ]
    fitted = fit_history(msgs, budget=150)
    assert fitted[0] == msgs[0] and fitted[1].content.startswith("TASK")
    assert "earlier turns omitted" in fitted[1].content
    assert fitted[-1] == msgs[-1] and fitted[2].role == "assistant"
    assert 2 < len(fitted) < len(msgs)
    assert fit_history(msgs, budget=10**6) == msgs


def test_get_agent_unknown_name() -> None:
    with pytest.raises(ValueError, match="react, reflexion, expert, random"):
        get_agent("planner")


def test_system_prompt_describes_the_current_tasks_perturbed_verbs() -> None:
    from palaestra.env import make, tasks

    env = make("house-v1", perturbations=["rename_verbs"])
    t1, t2 = tasks("house-v1", n=2, difficulty="easy")
    model = ScriptedModel(lambda conv: "Action: inventory")
    run_episode(ReactAgent(max_steps=1), env, t1, model)
    env.reset(t1)
    help1 = env.action_help
    run_episode(ReactAgent(max_steps=1), env, t2, model)
    env.reset(t2)
    help2 = env.action_help
    assert help1 != help2  # different tasks, different synonyms
    assert help2 in model.calls[-1][0].content and help1 not in model.calls[-1][0].content


def test_sampling_seed_varies_by_attempt_but_not_when_greedy() -> None:
    from palaestra.model import GenerationConfig

    env = ToyEnv()
    task = env.make_task(0)

    def seeds(temperature: float) -> list[int | None]:
        agent = ReactAgent(
            max_steps=1, generation=GenerationConfig(temperature=temperature, seed=5)
        )
        out: list[int | None] = []
        for attempt in range(3):
            loop = agent.run(env, task, attempt)
            call = next(loop)
            assert not isinstance(call, Step)
            assert call.config is not None
            out.append(call.config.seed)
            loop.close()
        return out

    sampled = seeds(0.8)
    assert sampled[0] == 5 and len(set(sampled)) == 3
    assert seeds(0.0) == [5, 5, 5]


def test_act_prompt_replies_are_the_action_line_alone() -> None:
    env = ToyEnv()
    task = env.make_task(1, difficulty="hard")
    steps, end = run_episode(ExpertAgent(prompt="act"), env, task)
    assert end.outcome == "success"
    replies = [m.content for m in end.messages if m.role == "assistant"]
    assert all(r.startswith("Action: ") and "\n" not in r for r in replies)
    assert (
        "exactly one line" in end.messages[0].content and "Thought" not in end.messages[0].content
    )
    model = ScriptedModel(["go up", "Action: inc", "Action: inc", "Action: stop"])
    steps, end = run_episode(ReactAgent(prompt="act"), env, env.make_task(0), model)
    assert steps[0].format_error is not None and "Thought" not in steps[0].observation
    assert end.outcome == "success"
