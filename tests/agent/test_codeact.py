"""The CodeAct agent: action-to-function mapping, parsing, the sandbox bridge, end to end."""

from __future__ import annotations

import threading
import time

import pytest

from palaestra.agent import (
    CodeActAgent,
    CodeActExpertAgent,
    ExpertAgent,
    ModelCall,
    derive_functions,
    get_agent,
    run_episode,
)
from palaestra.env import EnvError, Environment, make, tasks
from palaestra.env.families.code import define_action
from palaestra.model import Completion, ScriptedModel
from palaestra.rollout import RolloutEngine
from palaestra.trajectory import Step


@pytest.fixture(scope="module")
def sandboxed() -> None:
    """Skip when no isolating sandbox backend works here (model code never runs unsandboxed)."""
    from palaestra.sandbox import available_backends

    usable = [b for b, why in available_backends().items() if why is None and b != "unsafe-local"]
    if not usable:
        pytest.skip(f"no isolating sandbox backend on this machine: {available_backends()}")


def _expert_actions(env_id: str, seed: int = 0, split: str = "test") -> list[str]:
    env = make(env_id)
    task = env.make_task(seed, split, "medium")  # type: ignore[arg-type]
    obs = env.reset(task)
    actions: list[str] = []
    while not obs.done:
        actions.append(env.expert())
        obs = env.step(actions[-1])
    env.close()
    return actions


# ---- mapping actions to functions (no sandbox) ------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "expected"),
    [
        ("toolqa-v1", {"search", "lookup", "calculate", "finish"}),
        ("house-v1", {"go_to", "open_", "take", "put", "inventory", "look"}),
        ("maze-v1", {"go", "pick_up", "drop", "open_", "unlock"}),
        ("shop-v1", {"search", "click", "back", "buy"}),
        ("code-v1", {"define", "submit"}),
    ],
)
def test_functions_are_derived_from_the_action_grammar(env_id: str, expected: set[str]) -> None:
    names = {f.name for f in derive_functions(make(env_id))}
    assert expected <= names


@pytest.mark.parametrize("env_id", ["toolqa-v1", "house-v1", "maze-v1", "shop-v1", "code-v1"])
def test_every_expert_action_maps_to_a_function_call(env_id: str) -> None:
    fns = derive_functions(make(env_id))
    for action in _expert_actions(env_id):
        matches = [f for f in fns if f.call_for(action) is not None]
        assert matches, action
        call = matches[0].call_for(action)
        assert call is not None
        # evaluating the call's arguments and formatting them gives back the action
        args = eval(call[call.index("(") :] + ("," if call.endswith("')") else ""), {})
        args = args if isinstance(args, tuple) else (args,)
        assert matches[0].action(args) == action


def test_renamed_verbs_are_followed() -> None:
    env = make("toolqa-v1", perturbations=["rename_verbs"], perturbation_seed=1)
    env.reset(env.make_task(0))
    names = {f.name for f in derive_functions(env)}
    assert names.isdisjoint({"search", "lookup"}) and len(names) == 4


def test_registered_and_built_by_name() -> None:
    agent = get_agent("codeact", max_steps=5)
    assert isinstance(agent, CodeActAgent) and agent.needs_model
    assert not get_agent("codeact-expert").needs_model
    with pytest.raises(ValueError, match="one prompt style"):
        CodeActAgent(prompt="compact")


def test_a_reply_without_code_is_a_format_error_fed_back(sandboxed: None) -> None:
    env = make("toolqa-v1")
    model = ScriptedModel(["I would search first.", "Final answer: 42"])
    # the final answer becomes a finish(...) call, run in the sandbox like any code
    steps, end = run_episode(CodeActAgent(), env, env.make_task(0), model)
    assert steps[0].format_error == "no ```python code block" and steps[0].action is None
    assert "could not be run" in model.calls[1][-1].content
    assert steps[1].action == "finish[42]" and end.outcome in ("success", "failure")


# ---- running code (sandboxed) --------------------------------------------------------------


def test_scripted_model_drives_codeact_with_state_across_turns(sandboxed: None) -> None:
    actions = _expert_actions("toolqa-v1")
    env = make("toolqa-v1")
    calls = [f"act({a!r})" for a in actions]
    replies = [
        # two actions in one block, the reply kept in a variable
        f"Thought: start\n```python\nfirst = {calls[0]}\nsecond = {calls[1]}\n```",
        "```python\nprint(first.splitlines()[0])\nlen(available_actions()) > 0\n```",
        "```python\n" + "\n".join(calls[2:]) + "\n```",
    ]
    model = ScriptedModel(replies)
    steps, end = run_episode(CodeActAgent(), env, env.make_task(0, "test", "medium"), model)
    assert end.outcome == "success"
    acted = [s.action for s in steps if s.action is not None]
    assert acted == actions
    # turn 0: two env steps, the model's output on the first only
    assert [s.info["codeact_turn"] for s in steps[:2]] == [0, 0] and steps[0].raw_output
    assert steps[1].raw_output == "" and steps[0].thought == "start"
    # turn 1 took no env step: one step with no action and the code's output
    quiet = [s for s in steps if s.info["codeact_turn"] == 1]
    assert len(quiet) == 1 and quiet[0].action is None and quiet[0].format_error is None
    assert quiet[0].observation.endswith("True")
    assert [s.index for s in steps] == list(range(len(steps)))
    assert end.metadata["codeact"] == {"turns": 3, "sandbox": "bubblewrap"}


def test_code_errors_are_observations_and_the_episode_goes_on(sandboxed: None) -> None:
    env = make("house-v1")
    actions = _expert_actions("house-v1")
    replies = ["```python\nundefined_name + 1\n```", "```python\nact(" + repr(actions[0]) + ")\n"]
    replies[1] += "```"
    replies += [f"```python\nact({a!r})\n```" for a in actions[1:]]
    steps, end = run_episode(
        CodeActAgent(), env, env.make_task(0, "test", "medium"), ScriptedModel(replies)
    )
    assert "NameError" in steps[0].observation and steps[0].action is None
    assert end.outcome == "success"


def test_closing_the_loop_mid_cell_stops_the_code(sandboxed: None) -> None:
    env = make("maze-v1")
    agent = CodeActAgent()
    loop = agent.run(env, env.make_task(0), 0)
    event = loop.send(None)
    assert isinstance(event, ModelCall)
    code = "```python\nwhile True:\n    look = go('north')\n```"
    event = loop.send(
        Completion(text=code, finish_reason="stop", prompt_tokens=1, completion_tokens=1)
    )
    assert isinstance(event, Step)
    before = threading.active_count()
    t0 = time.perf_counter()
    loop.close()  # e.g. the engine's wall-time limit
    assert time.perf_counter() - t0 < 10
    time.sleep(0.2)
    assert threading.active_count() <= before


def test_a_killed_interpreter_is_an_error_outcome(sandboxed: None) -> None:
    env_id = "toolqa-v1"
    model = ScriptedModel(
        lambda conv: "```python\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n```"
    )
    engine = RolloutEngine(CodeActAgent(), lambda: make(env_id), model, max_retries=0)
    [ep] = engine.run(tasks(env_id, "test", n=1))
    assert ep.outcome == "error" and ep.score == 0.0
    assert ep.error is not None and ep.error.type == "SandboxUnavailable"


def test_a_timed_out_cell_is_an_observation_and_the_episode_is_scored(sandboxed: None) -> None:
    # Regression: the interpreter restarted after a timeout was tied to the cell's short-lived
    # thread and died with it, so the next cell raised SandboxUnavailable (outcome "error").
    env_id = "house-v1"
    task = tasks(env_id, "test", n=1)[0]
    probe = make(env_id)
    probe.reset(task)
    actions: list[str] = []
    while True:
        actions.append(probe.expert())
        if probe.step(actions[-1]).done:
            break
    replies = ["```python\nwhile True:\n    pass\n```"]
    replies += [f"```python\nact({a!r})\n```" for a in actions]
    model = ScriptedModel(replies)
    agent = CodeActAgent(exec_timeout=0.5)
    engine = RolloutEngine(agent, lambda: make(env_id), model, max_retries=0)
    [ep] = engine.run([task])
    assert ep.outcome == "success", ep.error
    assert "timed out" in ep.steps[0].observation and ep.steps[0].action is None
    assert [s.action for s in ep.steps[1:]] == actions


def test_the_expert_double_solves_code_v1_in_two_turns(sandboxed: None) -> None:
    env = make("code-v1")
    task = env.make_task(2, "heldout", "hard")
    steps, end = run_episode(CodeActExpertAgent(), env, task)
    assert end.outcome == "success" and [s.action.split("\n")[0] for s in steps if s.action] == [
        "define",
        "submit",
    ]
    assert "define('''def " in steps[0].raw_output
    env.close()


def test_a_model_writes_and_tests_code_in_the_interpreter_then_submits(sandboxed: None) -> None:
    env = make("code-v1")
    task = env.make_task(0, "train", "easy")
    ref = define_action("x")  # the action shape, to find the reference below
    assert ref.startswith("define\n")
    env.reset(task)
    source = env.expert().split("```python\n", 1)[1].rsplit("\n```", 1)[0]
    replies = [
        f"```python\nsrc = {source!r}\nexec(src)\nprint('compiled')\n```",
        "```python\nprint(define(src))\n```",
        "```python\nsubmit()\n```",
    ]
    steps, end = run_episode(CodeActAgent(), env, task, ScriptedModel(replies))
    assert end.outcome == "success" and steps[0].observation == "compiled"
    assert "Examples passed: 3 of 3" in steps[1].observation
    env.close()


# ---- both loops end to end through the rollout engine ----------------------------------------


@pytest.mark.parametrize("env_id", ["code-v1", "toolqa-v1"])
def test_react_and_codeact_both_solve_through_the_engine(sandboxed: None, env_id: str) -> None:
    suite = tasks(env_id, "test", n=3)
    results = {}
    for agent in (ExpertAgent(), CodeActExpertAgent()):
        episodes = RolloutEngine(agent, lambda: make(env_id), concurrency=2).run(suite)
        assert [e.outcome for e in episodes] == ["success"] * 3, [e.error for e in episodes]
        results[agent.name] = sorted(e.n_steps for e in episodes)
    assert results["expert"] == results["codeact-expert"]  # one action per turn in both


def test_an_env_error_inside_code_propagates(sandboxed: None) -> None:
    class Broken(Environment):
        env_id = "broken-v1"
        action_help = "poke[<x>]"

        def make_task(self, seed, split="train", difficulty="easy", **params):  # type: ignore[no-untyped-def]
            return self._new_task(seed, split, difficulty, {}, "poke it")

        def _reset(self, task):  # type: ignore[no-untyped-def]
            return "poke it"

        def _step(self, action):  # type: ignore[no-untyped-def]
            raise EnvError("the simulator crashed")

        def available_actions(self) -> list[str]:
            return ["poke[x]"]

        def progress(self) -> float:
            return 0.0

        def expert(self) -> str:
            return "poke[x]"

    env = Broken()
    model = ScriptedModel(["```python\npoke('x')\n```"])
    with pytest.raises(EnvError, match="simulator crashed"):
        run_episode(CodeActAgent(), env, env.make_task(0), model)


# ---- the ReAct parser's fenced multi-line actions (used by code-v1 under ReAct) -------------


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("Action: define\n```python\ndef f():\n    return 1\n```\nObservation: x",
         "define\n```python\ndef f():\n    return 1\n```"),
        ("Action: ```python\nx = 1\n```", "```python\nx = 1\n```"),
        ("Action:\n```\nx = 1\n```", "```\nx = 1\n```"),
        ("Action: ```stop```", "stop"),  # inline fences are stripped, as before
        ("Action: inc\n\n```python\nnot part of it\n```", "inc"),  # only the very next line
    ],
)  # fmt: skip
def test_react_parser_keeps_a_fenced_block_after_the_action(text: str, action: str) -> None:
    from palaestra.agent import parse_react

    assert parse_react(text).action == action


def test_react_parser_reports_an_unclosed_block() -> None:
    from palaestra.agent import parse_react

    parsed = parse_react("Action: define\n```python\ndef f():")
    assert parsed.action is None and parsed.error is not None and "not closed" in parsed.error
