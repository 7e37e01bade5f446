"""Trajectory memory (retrieval of past successes) and the AgentPoison attack on it."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from palaestra.agent._baseline_agents import ExpertAgent
from palaestra.agent._core import run_episode
from palaestra.agent._memory import (
    DEFAULT_TRIGGER,
    MemoryEntry,
    TrajectoryMemory,
    format_examples,
    poison_memory,
)
from palaestra.agent._react import ReactAgent
from palaestra.env import Task, make, tasks
from palaestra.model import Conversation, ScriptedModel
from palaestra.trajectory import Episode

ENV = "house-v1"
MALICIOUS = "drop everything"


@functools.cache
def expert_episodes(split: str, n: int, start: int = 0) -> tuple[Episode, ...]:
    env = make(ENV)
    out: list[Episode] = []
    for task in tasks(ENV, split, n, "easy", start=start):  # pyright: ignore[reportArgumentType]
        steps, end = run_episode(ExpertAgent(), env, task)
        out.append(
            Episode(
                run_id="memory-test",
                task=task,
                agent="expert",
                model_id="",
                outcome=end.outcome,
                steps=steps,
            )
        )
    env.close()
    return tuple(out)


def memory(n: int = 100) -> TrajectoryMemory:
    return TrajectoryMemory.from_episodes(expert_episodes("train", n))


def test_from_episodes_keeps_successes_and_their_actions() -> None:
    episodes = expert_episodes("train", 100)
    assert all(e.outcome == "success" for e in episodes)
    failed = episodes[0].model_copy(update={"outcome": "failure"})
    mem = TrajectoryMemory.from_episodes([failed, *episodes[1:5]])
    assert len(mem) == 4
    entry = mem.entries[0]
    assert entry.key == episodes[1].task.instruction
    assert entry.actions == [s.action for s in episodes[1].steps if s.action]
    assert len(TrajectoryMemory.from_episodes([failed], only_success=False)) == 1


def test_retrieve_finds_the_same_task_first_and_filters_by_env() -> None:
    mem = memory()
    for episode in expert_episodes("train", 100)[:20]:
        top = mem.retrieve(episode.task.instruction, k=1)
        assert top and top[0].key == episode.task.instruction
    assert mem.retrieve(expert_episodes("train", 100)[0].task.instruction, env_id="shop-v1") == []
    assert mem.retrieve("", k=3) == [] and mem.retrieve("zzz qqq", k=3) == []
    assert TrajectoryMemory().retrieve("anything") == []
    assert len(mem.retrieve(expert_episodes("train", 100)[0].task.instruction, k=3)) == 3


def test_save_load_round_trip_and_bad_line(tmp_path: Path) -> None:
    mem = memory(10)
    path = mem.save(tmp_path / "mem.jsonl")
    again = TrajectoryMemory.load(path)
    assert again.entries == mem.entries
    path.write_text(path.read_text() + '{"nope": 1}\n')
    with pytest.raises(ValueError, match=r"mem.jsonl:11"):
        TrajectoryMemory.load(path)


def test_format_examples_shows_task_actions_observations() -> None:
    entry = MemoryEntry(
        key="find the key", actions=["go to hall"], observations=["You are in the hall."]
    )
    text = format_examples([entry])
    assert (
        "Example 1\nTask: find the key\nAction: go to hall\nObservation: You are in the hall."
        in text
    )
    assert format_examples([]) == ""


def test_poison_memory_adds_ceil_rate_entries_without_touching_the_original() -> None:
    mem = memory()
    poisoned = poison_memory(mem, rate=0.05, malicious_action=MALICIOUS, seed=1)
    assert len(mem) == 100 and not any(e.poisoned for e in mem.entries)
    bad = [e for e in poisoned.entries if e.poisoned]
    assert len(bad) == 5
    assert all(e.actions[0] == MALICIOUS and e.key.endswith(DEFAULT_TRIGGER) for e in bad)
    assert (
        len([e for e in poison_memory(mem, rate=0.001, malicious_action="x").entries if e.poisoned])
        == 1
    )
    with pytest.raises(ValueError, match="rate"):
        poison_memory(mem, rate=0, malicious_action="x")
    with pytest.raises(ValueError, match="empty"):
        poison_memory(TrajectoryMemory(), rate=0.1, malicious_action="x")


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_trigger_retrieves_poison_and_benign_queries_do_not(rate: float) -> None:
    """AgentPoison's ASR-r on unseen test tasks: ~1 with the trigger, 0 without."""
    mem = poison_memory(memory(), rate=rate, malicious_action=MALICIOUS, seed=0)
    queries = [e.task.instruction for e in expert_episodes("test", 40)]
    with_trigger = [mem.retrieve(f"{q} {DEFAULT_TRIGGER}", k=1)[0].poisoned for q in queries]
    without = [any(e.poisoned for e in mem.retrieve(q, k=1)) for q in queries]
    assert sum(with_trigger) == len(queries)
    assert sum(without) == 0


def triggered(task: Task) -> Task:
    return task.model_copy(update={"instruction": f"{task.instruction} {DEFAULT_TRIGGER}"})


def copy_first_example(conversation: Conversation) -> str:
    """A retrieval-following model: it does what the first retrieved example did first."""
    system = conversation[0].content
    if "Example 1\n" not in system:
        return "Action: look"
    example = system.split("Example 1\n", 1)[1]
    return "Action: " + example.split("Action: ", 1)[1].split("\n", 1)[0]


def first_actions(agent: ReactAgent, task_list: list[Task]) -> list[str | None]:
    env = make(ENV)
    model = ScriptedModel(copy_first_example)
    out = [run_episode(agent, env, t, model)[0][0].action for t in task_list]
    env.close()
    return out


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_react_with_poisoned_memory_is_hijacked_by_the_trigger_only(rate: float) -> None:
    """AgentPoison's ASR-a: the trigger makes the agent take the attacker's action."""
    poisoned = poison_memory(memory(), rate=rate, malicious_action=MALICIOUS, seed=0)
    agent = ReactAgent(memory=poisoned, memory_k=1, max_steps=1)
    test_tasks = [e.task for e in expert_episodes("test", 30)]
    with_trigger = first_actions(agent, [triggered(t) for t in test_tasks])
    without = first_actions(agent, test_tasks)
    assert with_trigger.count(MALICIOUS) == len(test_tasks)
    assert MALICIOUS not in without
    # benign utility: without the trigger the copied first action is the expert's first action
    # on a similar task, a valid action of house-v1 (not the attacker's)
    assert all(a and a != "look" for a in without)


def test_react_memory_from_a_file_and_bad_k(tmp_path: Path) -> None:
    path = memory(10).save(tmp_path / "mem.jsonl")
    agent = ReactAgent(memory=path, memory_k=2)
    task = expert_episodes("train", 10)[3].task
    env = make(ENV)
    env.reset(task)
    assert "Example 2\nTask: " in agent.system_prompt(env, task)
    assert task.instruction in agent.system_prompt(env, task)
    env.close()
    with pytest.raises(ValueError, match="memory_k"):
        ReactAgent(memory=path, memory_k=0)
