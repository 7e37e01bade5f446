"""Tests of the ``maze-v1`` family: the contract, the expert, the random baseline, semantics."""

from __future__ import annotations

import random
import re

import pytest

from palaestra.env import (
    DIFFICULTIES,
    PERTURBATIONS,
    SPLITS,
    Difficulty,
    Environment,
    Split,
    check_env,
    make,
    tasks,
)
from palaestra.env.families._maze_gen import HELDOUT_VOCAB, TRAIN_VOCAB
from palaestra.env.families._maze_world import DOOR, LOCKED, MazeState
from palaestra.env.families.maze import MazeEnv

ID = "maze-v1"


def _state(env: Environment) -> MazeState:
    inner = env.unwrapped
    assert isinstance(inner, MazeEnv) and inner.state is not None
    return inner.state


def test_conformance() -> None:
    report = check_env(lambda: make(ID), seeds=range(4))
    assert report.ok and report.tasks_checked == 12


def test_conformance_under_perturbations() -> None:
    assert check_env(lambda: make(ID, perturbations=list(PERTURBATIONS)), seeds=(0, 1)).ok


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_expert_solves_every_task_within_the_step_limit(
    split: Split, difficulty: Difficulty
) -> None:
    env = make(ID)  # the registered limit of 100 steps applies
    for task in tasks(ID, split, 30, difficulty):
        obs = env.reset(task)
        solution = _state(env).world.plan  # what the generator's planner found
        rewards = []
        while not obs.done:
            obs = env.step(env.expert())
            rewards.append(obs.reward)
        assert obs.terminated and obs.info["success"], task.task_id
        assert rewards[-1] == 1.0 and sum(rewards) == 1.0
        assert env.progress() == 1.0
        assert len(rewards) == len(solution) <= 80


def test_expert_recovers_from_random_play() -> None:
    """From states a random agent leaves behind (objects dropped anywhere), the expert still solves."""
    env = make(ID, max_episode_steps=0)
    rng = random.Random("maze-random-prefix")
    for difficulty in DIFFICULTIES:
        for task in tasks(ID, "train", 12, difficulty, start=100):
            obs = env.reset(task)
            for _ in range(30):
                obs = env.step(rng.choice(env.available_actions()))
                if obs.done:
                    break
            steps = 0
            while not obs.done:
                obs = env.step(env.expert())
                steps += 1
                assert steps < 200, task.task_id
            assert obs.info["success"], task.task_id


@pytest.mark.parametrize(("difficulty", "bound"), [("easy", 0.4), ("medium", 0.12), ("hard", 0.04)])
def test_random_agent_scores_low(difficulty: Difficulty, bound: float) -> None:
    env = make(ID)
    rng = random.Random(f"maze-random:{difficulty}")
    wins = 0
    n = 50
    for task in tasks(ID, "test", n, difficulty):
        obs = env.reset(task)
        while not obs.done:
            obs = env.step(rng.choice(env.available_actions()))
        wins += bool(obs.info.get("success"))
    assert wins / n <= bound


def _words(texts: list[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


def test_heldout_vocabulary_and_templates_are_disjoint() -> None:
    env = make(ID)
    seen: dict[str, list[str]] = {"train": [], "heldout": []}
    for split in ("train", "test", "heldout"):
        for task in tasks(ID, split, 60):
            seen["heldout" if split == "heldout" else "train"].append(env.reset(task).text)
    heldout_only = set(HELDOUT_VOCAB.colours) | set(HELDOUT_VOCAB.kinds) | {"exit", "tile"}
    train_only = set(TRAIN_VOCAB.colours) | set(TRAIN_VOCAB.kinds) | {"goal", "square"}
    assert not heldout_only & _words(seen["train"])
    assert not train_only & _words(seen["heldout"])
    assert heldout_only <= _words(seen["heldout"]) | {"exit", "tile"}
    for kind, templates in HELDOUT_VOCAB.templates.items():
        assert not set(templates) & set(TRAIN_VOCAB.templates[kind])


def test_train_and_test_share_vocabulary_but_not_tasks() -> None:
    env = make(ID)
    train = [t.instruction for t in tasks(ID, "train", 60)]
    test = [t.instruction for t in tasks(ID, "test", 60)]
    colours = set(TRAIN_VOCAB.colours)
    assert colours & _words(train) and colours & _words(test)
    assert train != test
    assert env.make_task(5, "train", "hard") != env.make_task(5, "test", "hard")


def test_walls_and_malformed_actions_get_feedback() -> None:
    env = make(ID)
    obs = env.reset(env.make_task(0, "train", "easy", goal="fetch"))  # walking alone cannot win
    for _ in range(20):  # walk north until something blocks the way
        obs = env.step("go north")
        if obs.info["invalid"]:
            break
    assert obs.info["invalid_kind"] == "invalid_action"
    assert obs.text == "There is a wall to the north." or "blocks the way north" in obs.text
    before = _state(env).key()
    expected = {
        "dance wildly": f"I don't understand 'dance wildly'. Valid actions look like: {MazeEnv.action_help}",
        "go up": "Say which way to go: 'go north', 'go south', 'go east' or 'go west'.",
        "pick up key": "Name what to pick up by colour and kind, e.g. 'pick up blue key'.",
        "open the door": "Name the door by its colour, e.g. 'open red door'.",
    }
    for bad, text in expected.items():
        obs = env.step(bad)
        assert obs.info["invalid_kind"] == "malformed" and not obs.done
        assert obs.text == text
    assert _state(env).key() == before


def test_locked_door_needs_its_key() -> None:
    env = make(ID, max_episode_steps=0)
    task = env.make_task(0, "train", "medium", goal="open")
    env.reset(task)
    st = _state(env)
    door = st.world.doors[st.world.goal.door]
    assert st.doors[st.world.goal.door] == LOCKED
    assert task.instruction in {
        f"Open the {door.colour} door.",
        f"Make sure the {door.colour} door is open.",
    }
    # Follow the expert up to the unlock, checking progress only grows on the way.
    progress = [env.progress()]
    while (action := env.expert()) != f"unlock {door.colour} door":
        obs = env.step(action)
        assert obs.reward == 0.0 and not obs.done
        progress.append(env.progress())
    assert progress == sorted(progress) and 0.0 < progress[-1] < 1.0  # the key is held
    # Walking into the locked door is refused, and so is unlocking without the key.
    toward = st.world.deltas.index(door.pos - st.agent)
    obs = env.step(f"go {('north', 'south', 'east', 'west')[toward]}")
    assert obs.info["invalid"] and "locked" in obs.text and f"unlock {door.colour} door" in obs.text
    obs = env.step(f"open {door.colour} door")
    assert obs.info["invalid"] and "locked" in obs.text
    snap = env.snapshot()
    key = st.world.items[st.carrying].name
    env.step(f"drop {key}")
    obs = env.step(f"unlock {door.colour} door")
    assert obs.info["invalid_kind"] == "invalid_action"
    assert obs.text == f"You need to carry the {door.colour} key to unlock the {door.colour} door."
    env.restore(snap)
    obs = env.step(f"Unlock the {door.colour} door with the {door.colour} key.")
    assert obs.terminated and obs.reward == 1.0 and obs.info["success"]


def test_hands_full_and_drop_feedback() -> None:
    env = make(ID)
    env.reset(env.make_task(3, "train", "easy", goal="fetch", distractors=4))
    st = _state(env)
    w = st.world
    held, other = [i for i in range(len(w.items)) if i != w.goal.item][:2]
    # Put the agent next to `other` with `held` in hand (white-box setup).
    cell = next(
        st.items[other] + d
        for d in w.deltas
        if w.cells[st.items[other] + d] == "." and st.items[other] + d not in st.items
    )
    st.agent, st.carrying, st.items[held] = cell, held, -1
    obs = env.step(f"pick up {w.items[other].name}")
    assert obs.info["invalid_kind"] == "invalid_action"
    assert obs.text.startswith(f"Your hands are full: you carry the {w.items[held].name}.")
    toward = ("north", "south", "east", "west")[w.deltas.index(st.items[other] - cell)]
    obs = env.step(f"drop {w.items[held].name} {toward}")
    assert obs.text == (
        f"You cannot drop the {w.items[held].name} to the {toward}: "
        f"the {w.items[other].name} is there."
    )
    obs = env.step(f"drop the {w.items[held].name}")  # no direction: the first free cell
    assert not obs.info["invalid"] and st.carrying == -1 and obs.text.startswith("You drop the")


def test_view_is_partial() -> None:
    """On medium, a go_to target lies behind the locked door: not in sight at the start."""
    env = make(ID)
    for seed in range(5):
        task = env.make_task(seed, "train", "medium", goal="go_to")
        text = env.reset(task).text
        target = _state(env).world.items[_state(env).world.goal.item].name
        body = text.replace(task.instruction, "")
        assert target not in body
        assert "rooms" in body and "Actions: go <north|south|east|west>" in body


def test_doorway_shows_both_rooms() -> None:
    env = make(ID, max_episode_steps=0)
    obs = env.reset(env.make_task(1, "train", "hard"))
    st = _state(env)
    while st.world.cells[st.agent] != DOOR:
        obs = env.step(env.expert())
        assert not obs.done
    assert obs.text.startswith("You go") and "You stand in the doorway of the" in obs.text


def test_available_actions_are_all_accepted_along_expert_runs() -> None:
    env = make(ID)
    for task in tasks(ID, "heldout", 6):
        obs = env.reset(task)
        while not obs.done:
            snap = env.snapshot()
            for action in env.available_actions():
                env.restore(snap)
                assert not env.step(action).info["invalid"], action
            env.restore(snap)
            obs = env.step(env.expert())


def test_params_are_validated_and_applied() -> None:
    env = make(ID)
    with pytest.raises(ValueError, match="'colour'"):
        env.make_task(0, "train", "easy", colour="red")
    with pytest.raises(ValueError, match="'goal'"):
        env.make_task(0, "train", "easy", goal="open")  # easy has no doors
    with pytest.raises(ValueError, match="'room_size'"):
        env.make_task(0, "train", "hard", room_size=9)
    task = env.make_task(0, "train", "hard", goal="put_next", distractors=6, room_size=3)
    env.reset(task)
    w = _state(env).world
    assert w.goal.kind == "put_next" and len(w.items) == 2 + 2 + 6  # keys, object, anchor
    assert w.rooms[0].height == w.rooms[0].width == 3
