"""The contract's shared behaviour, exercised through ToyEnv."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from palaestra.env import EnvError, Observation, ResetNeeded, Task, ToyEnv


def _task(**kw: object) -> Task:
    fields: dict[str, object] = {
        "env_id": "toy-v1",
        "split": "train",
        "seed": 3,
        "difficulty": "easy",
        "instruction": "Stop on the number 2.",
    }
    fields.update(kw)
    return Task.model_validate(fields)


def test_task_id_is_stable_and_pinned() -> None:
    # Pinned literally: the id must never change across versions or machines.
    assert _task().task_id == "toy-v1/train/easy/3-18b6d058e3"
    key = json.dumps(["toy-v1", "train", 3, "easy", {}], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(key.encode()).hexdigest()[:10] == "18b6d058e3"


def test_task_id_depends_on_identity_fields_not_instruction() -> None:
    base = _task()
    assert _task(instruction="reworded").task_id == base.task_id
    for change in ({"seed": 4}, {"split": "test"}, {"difficulty": "hard"}, {"params": {"k": 1}}):
        assert _task(**change).task_id != base.task_id, change


def test_task_params_order_does_not_change_id() -> None:
    assert _task(params={"a": 1, "b": 2}).task_id == _task(params={"b": 2, "a": 1}).task_id


def test_task_json_round_trip_and_tamper_detection() -> None:
    t = _task(params={"rooms": 3})
    data = t.model_dump_json()
    assert json.loads(data)["task_id"] == t.task_id
    assert Task.from_json(data) == t
    tampered = json.loads(data)
    tampered["seed"] = 99
    with pytest.raises(ValueError, match="does not match"):
        Task.from_json(json.dumps(tampered))


@pytest.mark.parametrize(
    ("field", "value"),
    [("env_id", "toy"), ("split", "validation"), ("difficulty", "extreme"), ("seed", -1)],
)
def test_task_rejects_bad_fields_naming_them(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        _task(**{field: value})


def test_task_is_immutable() -> None:
    with pytest.raises(ValidationError):
        _task().seed = 5  # type: ignore[misc]


def test_step_before_reset_and_after_end_raise_reset_needed() -> None:
    env = ToyEnv()
    with pytest.raises(ResetNeeded):
        env.step("inc")
    env.reset(env.make_task(0))
    obs = env.step("stop")
    assert obs.terminated
    with pytest.raises(ResetNeeded):
        env.step("inc")


def test_reset_rejects_a_task_of_another_env() -> None:
    env = ToyEnv()
    with pytest.raises(ValueError, match="not 'toy-v1'"):
        env.reset(_task(env_id="shop-v1"))


def test_invalid_actions_are_observations_with_counts() -> None:
    env = ToyEnv()
    env.reset(env.make_task(0))
    obs = env.step("jump")
    assert not obs.done
    assert obs.info["invalid"] and obs.info["invalid_kind"] == "malformed"
    assert "inc, dec, stop" in obs.text
    obs = env.step("   ")
    assert obs.info["invalid_count"] == 2 and "Empty action" in obs.text
    obs = env.step("inc")
    assert obs.info == {
        "step": 3,
        "progress": obs.info["progress"],
        "invalid": False,
        "invalid_kind": None,
        "invalid_count": 2,
    }


def test_actions_are_whitespace_normalised() -> None:
    env = ToyEnv()
    env.reset(env.make_task(0))
    assert not env.step("  inc \n").info["invalid"]


def test_terminal_info_has_success() -> None:
    env = ToyEnv()
    env.reset(env.make_task(0))
    obs = env.step("stop")
    assert obs.terminated and obs.info["success"] is False and obs.reward == 0.0


def test_env_error_propagates_from_the_world() -> None:
    def boom(action: str) -> None:
        raise EnvError("simulator crashed")

    env = ToyEnv(on_step=boom)
    env.reset(env.make_task(0))
    with pytest.raises(EnvError, match="simulator crashed"):
        env.step("inc")


def test_snapshot_belongs_to_its_instance() -> None:
    a, b = ToyEnv(), ToyEnv()
    a.reset(a.make_task(0))
    b.reset(b.make_task(0))
    with pytest.raises(ValueError, match="this environment instance"):
        b.restore(a.snapshot())


def test_snapshot_restore_round_trip() -> None:
    env = ToyEnv()
    env.reset(env.make_task(1, difficulty="hard"))
    env.step("inc")
    snap = env.snapshot()
    env.step("inc")
    env.step("dec")
    env.step("dec")
    env.restore(snap)
    assert env.state["pos"] == 1
    assert env.last_observation is not None and env.last_observation.text == "You are at 1."


def test_observation_done() -> None:
    assert Observation(text="x", truncated=True).done
    assert not Observation(text="x").done
