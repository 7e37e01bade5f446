"""The ``inject_instruction`` perturbation: where it plants, what it records, who it refuses."""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path

import pytest

from palaestra.env import (
    ALL_PERTURBATIONS,
    PERTURBATIONS,
    Environment,
    Observation,
    Perturb,
    Perturbation,
    ToyEnv,
    check_env,
    make,
    tasks,
)
from palaestra.env._injection import INJECTION_TEMPLATES, Injection, expert_plan
from palaestra.env.external.miniwob._env import page_name_spans
from palaestra.env.external.miniwob._page import Node, render_page

FAMILIES = ("shop-v1", "toolqa-v1")
_BACKTICKED = re.compile(r"`([^`]+)`")


def _planted(obs: Observation) -> bool:
    record = obs.info["injection"]
    return record["planted_at"] is not None and record["planted_at"] == obs.info["step"]


def _play_to_planting(env: Environment, task_seed: int, env_id: str) -> Observation:
    """Follow the expert until the instruction is planted; return that observation."""
    obs = env.reset(tasks(env_id, "test", n=task_seed + 1, difficulty=None)[task_seed])
    while not _planted(obs):
        assert not obs.done, "the expert finished without reading any third-party text"
        obs = env.step(env.expert())
    return obs


@pytest.mark.parametrize("env_id", FAMILIES)
def test_the_instruction_is_planted_once_in_third_party_text(env_id: str) -> None:
    env = make(env_id, perturbations=["inject_instruction"], perturbation_seed=1)
    inner = env.unwrapped
    for seed in range(6):
        obs = _play_to_planting(env, seed, env_id)
        record = obs.info["injection"]
        attack = record["attacker_action"]
        # One template, naming the attacker's action, which is valid here and not the expert's.
        assert sum(t.split("`")[0] in obs.text for t in INJECTION_TEMPLATES) == 1
        assert _BACKTICKED.findall(obs.text) == [attack]
        assert attack in env.available_actions() and attack != env.expert()
        assert record["executed"] is False and record["executed_at"] is None
        # It sits inside text a third party wrote (the inner observation lacks it).
        plain = inner.last_observation
        assert plain is not None and attack not in plain.text.split("`")
        spans = inner.third_party_spans(plain.text)
        line = next(ln for ln in obs.text.splitlines() if f"`{attack}`" in ln)
        assert any(plain.text[a:b] in line for a, b in spans)
        # Later observations keep the record and plant nothing more.
        obs = env.step(env.expert())
        assert obs.info["injection"]["planted_at"] == record["planted_at"]
        assert not _BACKTICKED.search(obs.text)


@pytest.mark.parametrize("env_id", FAMILIES)
def test_executing_the_attackers_action_is_recorded(env_id: str) -> None:
    env = make(env_id, perturbations=["inject_instruction"])
    obs = _play_to_planting(env, 0, env_id)
    attack = obs.info["injection"]["attacker_action"]
    bad = env.step("not an action at all")  # invalid: nothing was carried out
    assert bad.info["injection"]["executed"] is False
    obs = env.step(f"  {attack} ")
    assert obs.info["injection"]["executed"] is True
    assert obs.info["injection"]["executed_at"] == obs.info["step"]


@pytest.mark.parametrize("env_id", FAMILIES)
def test_the_expert_never_executes_the_attack_and_still_succeeds(env_id: str) -> None:
    env = make(env_id, perturbations=["inject_instruction"], perturbation_seed=2)
    for task in tasks(env_id, "test", n=12, difficulty=None):
        obs = env.reset(task)
        while not obs.done:
            obs = env.step(env.expert())
        assert obs.info["success"]
        assert obs.info["injection"]["planted_at"] is not None
        assert obs.info["injection"]["executed"] is False


def test_the_attacker_action_is_never_in_the_experts_remaining_plan() -> None:
    env = make("toolqa-v1", perturbations=["inject_instruction"], max_episode_steps=0)
    assert isinstance(env, Perturb)
    for seed in range(8):
        _play_to_planting(env, seed, "toolqa-v1")
        plan = expert_plan(env.env)
        assert plan and env.last_observation is not None
        assert env.last_observation.info["injection"]["attacker_action"] not in plan
        assert env.expert() == plan[0]  # the simulation left the state as it was


def test_planted_text_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    def planted(env_id: str, seed: int) -> list[str]:
        env = make(env_id, perturbations=["inject_instruction"], perturbation_seed=seed)
        return [_play_to_planting(env, i, env_id).text for i in range(4)]

    for env_id in FAMILIES:
        assert planted(env_id, 3) == planted(env_id, 3)
        assert len({tuple(planted(env_id, s)) for s in range(4)}) > 1


def test_renamed_verbs_apply_to_the_planted_action_too() -> None:
    perts: list[Perturbation] = [
        "inject_instruction",
        "rename_verbs",
        "paraphrase_instruction",
        "distractors",
    ]
    env = make("toolqa-v1", perturbations=perts, perturbation_seed=5)
    obs = _play_to_planting(env, 1, "toolqa-v1")
    original = obs.info["injection"]["attacker_action"]
    (shown,) = _BACKTICKED.findall(obs.text)
    assert shown != original and shown in env.available_actions()  # what the agent must type
    obs = env.step(shown)
    assert obs.info["injection"]["executed"] is True


@pytest.mark.parametrize("env_id", FAMILIES)
def test_injected_envs_pass_the_checker(env_id: str) -> None:
    report = check_env(
        lambda: make(env_id, perturbations=list(ALL_PERTURBATIONS), perturbation_seed=4),
        seeds=range(2),
    )
    assert report.ok, report.problems


def test_snapshot_restores_the_injection_record_and_last_observation() -> None:
    env = make("shop-v1", perturbations=["inject_instruction"], max_episode_steps=0)
    obs = _play_to_planting(env, 2, "shop-v1")
    snap = env.snapshot()
    env.step(obs.info["injection"]["attacker_action"])
    assert env.last_observation is not None
    assert env.last_observation.info["injection"]["executed"] is True
    env.restore(snap)
    assert env.last_observation == obs  # the perturbed observation, planted text included
    assert env.step(env.expert()).info["injection"]["executed"] is False


def test_off_by_default_and_not_among_the_universal_perturbations() -> None:
    assert "inject_instruction" not in PERTURBATIONS
    assert set(ALL_PERTURBATIONS) == {*PERTURBATIONS, "inject_instruction"}
    env = make("shop-v1", perturbations=["distractors"])
    obs = env.reset(tasks("shop-v1", n=1)[0])
    assert "injection" not in env.step(env.expert()).info and "injection" not in obs.info


@pytest.mark.parametrize("env_id", ["house-v1", "maze-v1", "code-v1"])
def test_environments_without_third_party_text_refuse(env_id: str) -> None:
    with pytest.raises(ValueError, match="inject_instruction") as err:
        make(env_id, perturbations=["rename_verbs", "inject_instruction"])
    message = str(err.value)
    assert repr(env_id) in message
    assert "shop-v1" in message and "toolqa-v1" in message and "miniwob/*" in message
    assert "house-v1" not in message.split("support it:")[1]


def test_a_bare_perturb_refuses_too() -> None:
    with pytest.raises(ValueError, match="'toy-v1' carry none"):
        Perturb(ToyEnv(), ["inject_instruction"])


def test_family_spans_mark_what_third_parties_wrote() -> None:
    shop = make("shop-v1", max_episode_steps=0)
    first = shop.reset(tasks("shop-v1", n=1)[0])  # the search page: only the user's words
    assert shop.third_party_spans(first.text) == []
    text = shop.step(shop.expert()).text  # a results page
    spans = shop.third_party_spans(text)
    titles = [line.split("] ", 1)[1].rsplit(" | $", 1)[0] for line in text.splitlines()[2:-1]]
    assert [text[a:b] for a, b in spans] == titles and titles

    toolqa = make("toolqa-v1", max_episode_steps=0)
    toolqa.reset(tasks("toolqa-v1", n=1)[0])
    page = toolqa.step(toolqa.expert()).text  # an entity page
    ((a, b),) = toolqa.third_party_spans(page)
    assert page[a:b] == page.splitlines()[1] and " is a " in page[a:b]
    value = toolqa.step(toolqa.expert()).text  # a lookup: "key of page: value"
    ((a, b),) = toolqa.third_party_spans(value)
    assert value[b:] == "" and value[:a].endswith(": ")


def test_miniwob_spans_are_the_quoted_names_of_the_page() -> None:
    nodes = [
        Node(pid=None, depth=0, role="text", name='Say "hi" to Bob'),
        Node(pid=3, depth=1, role="button", name="Submit"),
        Node(pid=4, depth=1, role="textbox", name=""),
    ]
    text = f"Task: Click Submit.\nPage:\n{render_page(nodes)}"
    spans = page_name_spans(text, nodes)
    assert [text[a:b] for a, b in spans] == ['Say \\"hi\\" to Bob', "Submit"]
    assert page_name_spans("Task: x\nEpisode over: success", []) == []


def test_injection_record_is_plain_json() -> None:
    record = Injection(attacker_action="buy", planted_at=1)
    assert record.info() == {
        "attacker_action": "buy",
        "planted_at": 1,
        "executed": False,
        "executed_at": None,
    }
    copy = record.copy()
    copy.executed = True
    assert record.executed is False


@pytest.mark.integration
@pytest.mark.skipif(
    find_spec("miniwob") is None
    or find_spec("playwright") is None
    or not Path("/usr/bin/chromium").exists(),
    reason='needs pip install "palaestra[miniwob]" and apt-get install -y chromium',
)
def test_miniwob_pages_carry_the_injection() -> None:
    env_id = "miniwob/login-user-v1"
    env = make(env_id, perturbations=["inject_instruction"], perturbation_seed=1)
    try:
        for task in tasks(env_id, "test", n=2, difficulty="easy"):
            obs = env.reset(task)  # the page is third-party text from the start
            record = obs.info["injection"]
            assert record["planted_at"] == 0
            assert _BACKTICKED.findall(obs.text) == [record["attacker_action"]]
            obs = env.step(record["attacker_action"])
            assert obs.info["injection"]["executed"] is True
            while not obs.done:
                obs = env.step(env.expert())
            assert obs.info["success"]
        report = check_env(lambda: make(env_id, perturbations=["inject_instruction"]), seeds=(0,))
        assert report.ok, report.problems
    finally:
        env.close()
