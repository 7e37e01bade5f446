"""StepLimit and the AgentRefine-style perturbations."""

from __future__ import annotations

import pytest

from palaestra.env import PERTURBATIONS, Perturb, StepLimit, ToyEnv, check_env, make, tasks


def _perturbed(*names: str, seed: int = 0) -> Perturb:
    return Perturb(ToyEnv(), names, seed=seed)  # type: ignore[arg-type]


def test_unknown_perturbation_is_rejected_with_choices() -> None:
    with pytest.raises(ValueError, match="rename_verbs"):
        _perturbed("flip_gravity")


def test_rename_verbs_translates_actions_and_rejects_originals() -> None:
    env = _perturbed("rename_verbs")
    task = env.make_task(0)
    env.reset(task)
    shown = env.available_actions()
    assert set(shown).isdisjoint({"inc", "dec", "stop"})
    assert env.expert() in shown
    up = env.expert()
    obs = env.step(up)
    assert not obs.info["invalid"] and env.unwrapped.state["pos"] == 1  # type: ignore[attr-defined]
    obs = env.step("inc")  # the original verb no longer works
    assert obs.info["invalid"] and "verbs are" in obs.text and up in obs.text
    assert env.unwrapped.state["pos"] == 1  # type: ignore[attr-defined]


def test_paraphrase_changes_instruction_text_only() -> None:
    env = _perturbed("paraphrase_instruction")
    task = env.make_task(0)
    text = env.reset(task).text
    assert task.instruction not in text
    assert "2" in text  # the content (target number) survives


def test_distractors_are_added_to_every_observation() -> None:
    env = _perturbed("distractors")
    first = env.reset(env.make_task(0)).text
    later = env.step("inc").text
    tail = first.splitlines()[-1]
    assert tail.endswith(".") and tail in later


def test_shuffle_is_seeded_and_reproducible() -> None:
    orders = set()
    for seed in range(12):
        env = _perturbed("shuffle_actions", seed=seed)
        env.reset(env.make_task(0))
        a = env.available_actions()
        assert a == env.available_actions()
        assert sorted(a) == ["dec", "inc", "stop"]
        orders.add(tuple(a))
    assert len(orders) > 1


def test_perturbations_are_deterministic_per_task_and_seed() -> None:
    def first(seed: int) -> str:
        env = _perturbed(*PERTURBATIONS, seed=seed)
        return env.reset(env.make_task(1)).text + "|" + ",".join(env.available_actions())

    assert first(0) == first(0)
    assert len({first(s) for s in range(8)}) > 1


def test_perturbed_env_passes_the_checker() -> None:
    check_env(lambda: Perturb(ToyEnv(), PERTURBATIONS, seed=3))


def test_step_limit_snapshot_includes_count() -> None:
    env = StepLimit(ToyEnv(), max_steps=3)
    env.reset(env.make_task(2, difficulty="hard"))
    env.step("dec")
    snap = env.snapshot()
    env.step("dec")
    env.restore(snap)
    assert not env.step("dec").truncated
    assert env.step("dec").truncated


def test_step_limit_validates() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        StepLimit(ToyEnv(), 0)


def test_rename_verbs_rejects_original_bracket_verbs() -> None:
    env = make("toolqa-v1", perturbations=["rename_verbs"])
    env.reset(tasks("toolqa-v1", n=1)[0])
    obs = env.step("search[anything]")
    assert obs.info["invalid"] and "Unknown action 'search[anything]'" in obs.text
    assert "search[" not in env.reset(tasks("toolqa-v1", n=1)[0]).text  # grammar hint renamed
    assert not env.step(env.expert()).info["invalid"]


@pytest.mark.parametrize("env_id", ["shop-v1", "house-v1", "toolqa-v1", "maze-v1"])
def test_inject_mistake_replaces_one_early_action_and_the_expert_recovers(env_id: str) -> None:
    env = make(env_id, perturbations=["inject_mistake"])
    plain = make(env_id)
    for task in tasks(env_id, "test", n=6):
        obs, injected = env.reset(task), []
        plain.reset(task)
        while not obs.done:
            action = env.expert()
            obs = env.step(action)
            if "injected_action" in obs.info:
                injected.append((obs.info["step"], obs.info["injected_action"], action))
                assert obs.text.startswith("(Your action was not carried out. Instead, you did: ")
                assert obs.info["injected_action"] != action  # the intended (right) action
                assert not obs.info["invalid"]
        assert len(injected) == 1, injected
        assert injected[0][0] in (2, 3)  # the 2nd or 3rd action (info["step"] counts from 1)
        assert obs.info["success"]  # the expert replans from the state the mistake left


def test_inject_mistake_is_seeded_per_task() -> None:
    def injected(seed: int) -> list[str]:
        env = make("house-v1", perturbations=["inject_mistake"], perturbation_seed=seed)
        out = []
        for task in tasks("house-v1", "test", n=5):
            obs = env.reset(task)
            while not obs.done:
                obs = env.step(env.expert())
                out += [obs.info["injected_action"]] if "injected_action" in obs.info else []
        return out

    assert injected(0) == injected(0)
    assert injected(0) != injected(1)
