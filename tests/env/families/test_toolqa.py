"""Tests of the ``toolqa-v1`` family: contract, expert, random baseline, heldout split, semantics."""

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
    Observation,
    Split,
    Task,
    check_env,
    make,
    tasks,
)
from palaestra.env.families._toolqa_kb import HELDOUT_SCHEMA, TRAIN_SCHEMA, normalize_answer
from palaestra.env.families.toolqa import ToolQAEnv

ID = "toolqa-v1"


def _expert_episode(env: Environment, task: Task) -> tuple[Observation, list[str]]:
    obs = env.reset(task)
    actions: list[str] = []
    while not obs.done:
        actions.append(env.expert())
        obs = env.step(actions[-1])
    return obs, actions


def _answer(env: Environment, task: Task) -> str:
    """The correct answer, read off the expert's finish action (the env is left mid-episode)."""
    env.reset(task)
    while not (action := env.expert()).startswith("finish["):
        env.step(action)
    return action[len("finish[") : -1]


def _task(difficulty: Difficulty, split: Split = "train", seed: int = 0) -> Task:
    return ToolQAEnv().make_task(seed, split, difficulty)


# ---- contract ---------------------------------------------------------------------


def test_conforms_to_the_contract() -> None:
    report = check_env(lambda: make(ID), seeds=range(5))
    assert report.tasks_checked == 15


def test_conforms_under_all_perturbations() -> None:
    check_env(lambda: make(ID, perturbations=list(PERTURBATIONS)), seeds=range(4))


def test_registered_class_and_action_verbs() -> None:
    env = make(ID)
    assert isinstance(env.unwrapped, ToolQAEnv)
    assert env.unwrapped.action_verbs == ("search", "lookup", "calculate", "finish")


# ---- expert and random baseline --------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_expert_solves_every_task_with_the_optimal_number_of_calls(
    split: Split, difficulty: Difficulty
) -> None:
    env = make(ID)
    for task in tasks(ID, split, 30, difficulty):
        obs, actions = _expert_episode(env, task)
        assert obs.terminated and obs.reward == 1.0 and obs.info["success"], task.task_id
        assert obs.info["tool_calls"] == obs.info["optimal_tool_calls"] == len(actions)
        assert obs.info["tool_overuse"] == 0
        calls = sum(a.startswith("calculate[") for a in actions)
        if difficulty == "easy":
            assert len(actions) == 3 and calls == 0
        elif difficulty == "medium":
            assert len(actions) == 5 and calls == 0
        else:  # four facts on three or four pages, plus arithmetic
            assert 9 <= len(actions) <= 10 and calls == 1


def test_random_agent_scores_low_and_actions_stay_bounded() -> None:
    env = make(ID)  # the registered step limit applies
    bound = {"easy": 0.12, "medium": 0.06, "hard": 0.03}
    for difficulty in DIFFICULTIES:
        rng = random.Random(f"random-agent:{difficulty}")
        wins = 0
        for task in tasks(ID, "test", 100, difficulty):
            obs = env.reset(task)
            while not obs.done:
                actions = env.available_actions()
                assert 1 <= len(actions) <= 40
                assert len(set(actions)) == len(actions)
                obs = env.step(rng.choice(actions))
            wins += bool(obs.info.get("success"))
        assert wins / 100 <= bound[difficulty], (difficulty, wins)


def test_generation_is_robust_at_the_smallest_and_largest_knowledge_bases() -> None:
    env = ToolQAEnv()
    for split in ("train", "heldout"):
        for seed in range(60):
            for params in ({"entities_per_kind": 3, "similar_names": 3}, {"entities_per_kind": 12}):
                task = env.make_task(seed, split, "hard", **params)
                obs, _ = _expert_episode(env, task)
                assert obs.info["success"]


# ---- heldout split ------------------------------------------------------------------------


def test_heldout_schema_shares_no_kinds_keys_or_templates() -> None:
    def keys(schema: object) -> set[str]:
        kinds = TRAIN_SCHEMA.kinds if schema is TRAIN_SCHEMA else HELDOUT_SCHEMA.kinds
        return {x.key for k in kinds.values() for x in (*k.attrs, *k.rels)}

    assert not set(TRAIN_SCHEMA.kinds) & set(HELDOUT_SCHEMA.kinds)
    assert not keys(TRAIN_SCHEMA) & keys(HELDOUT_SCHEMA)
    train_templates = {t for ts in TRAIN_SCHEMA.templates.values() for t in ts}
    heldout_templates = {t for ts in HELDOUT_SCHEMA.templates.values() for t in ts}
    assert not train_templates & heldout_templates
    assert not set(TRAIN_SCHEMA.onsets) & set(HELDOUT_SCHEMA.onsets)


def test_heldout_instructions_use_unseen_names_kinds_and_phrasings() -> None:
    seen = [t.instruction for s in ("train", "test") for t in tasks(ID, s, 90)]
    held = [t.instruction for t in tasks(ID, "heldout", 90)]
    seen_words = {w.lower() for text in seen for w in re.findall(r"[A-Za-z_]+", text)}
    held_names = {w for text in held for w in re.findall(r"\b[A-Z][a-z]+", text)}
    held_names -= {text.split()[0] for text in held}  # sentence-initial template words
    assert held_names, "heldout instructions should name entities"
    assert not {w.lower() for w in held_names} & seen_words
    for kind in HELDOUT_SCHEMA.kinds:
        assert kind not in seen_words
    assert not {t.split()[0] for t in seen} & {t.split()[0] for t in held}


def test_heldout_pages_show_heldout_keys() -> None:
    env = make(ID)
    task = _task("easy", "heldout", seed=4)
    env.reset(task)
    page = env.step(env.expert()).text
    heldout_keys = {x.key for k in HELDOUT_SCHEMA.kinds.values() for x in (*k.attrs, *k.rels)}
    match = re.search(r"Keys: ([^(]*)", page)
    assert match is not None
    shown = set(match.group(1).replace(",", " ").split())
    assert shown and shown <= heldout_keys


# ---- semantics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("1,200", "1200"),
        ("1200", "1200"),
        ("1200.0", "1200"),
        (" 1 200 ", "1200"),
        ("'1200'.", "1200"),
        ("[1200]", "1200"),
        ("-33", "-33"),
        ("3.50", "3.5"),
        ("Orin  DASK.", "orin dask"),
    ],
)
def test_answer_normalisation(given: str, canonical: str) -> None:
    assert normalize_answer(given) == canonical


def test_numeric_answers_match_in_any_format() -> None:
    env = make(ID)
    task = next(t for t in tasks(ID, "train", 40, "hard") if int(_answer(make(ID), t)) >= 1000)
    answer = int(_answer(env, task))
    for shown in (f"{answer:,}", f"{answer}.0", f" {answer} "):
        _answer(env, task)
        obs = env.step(f"finish[{shown}]")
        assert obs.terminated and obs.reward == 1.0 and obs.info["success"], shown
    _answer(env, task)
    obs = env.step(f"finish[{answer + 1}]")
    assert obs.terminated and obs.reward == 0.0 and obs.info["success"] is False


def test_entity_answers_ignore_case_and_spacing() -> None:
    env = make(ID)
    task = next(t for t in tasks(ID, "train", 40, "medium") if not _answer(make(ID), t).isdigit())
    name = _answer(env, task)
    obs = env.step(f"finish[  {name.upper()} ]")
    assert obs.reward == 1.0


def test_wrong_answer_scores_zero_and_keeps_partial_progress() -> None:
    env = make(ID)
    task = _task("medium", seed=2)
    answer = _answer(env, task)
    assert env.progress() == pytest.approx(2 / 3)  # both facts retrieved, answer missing
    obs = env.step("finish[certainly not this]")
    assert obs.terminated and obs.reward == 0.0 and not obs.info["success"]
    assert "not correct" in obs.text and answer not in obs.text
    assert env.progress() == pytest.approx(2 / 3)


def test_progress_counts_only_the_questions_facts() -> None:
    env = make(ID)
    task = _task("hard", seed=5)
    env.reset(task)
    seen = [env.progress()]
    while not (action := env.expert()).startswith(("calculate[", "finish[")):
        obs = env.step(action)
        seen.append(obs.info["progress"])
    assert seen[0] == 0.0
    assert seen[-1] == pytest.approx(4 / 5)  # four facts of five subgoals; the answer is last
    assert sorted(seen) == seen
    # Looking up a key the question does not need does not move progress.
    env.reset(task)
    env.step(env.expert())  # opens the first page
    needed = env.expert()
    other = next(a for a in env.available_actions() if a.startswith("lookup[") and a != needed)
    assert env.step(other).info["progress"] == 0.0


def test_lookup_without_a_page_is_an_invalid_action_with_a_hint() -> None:
    env = make(ID)
    task = _task("easy", seed=1)
    env.reset(task)
    obs = env.step("lookup[population]")
    assert obs.info["invalid_kind"] == "invalid_action"
    assert "No page is open" in obs.text and "search[" in obs.text


def test_lookup_of_a_missing_key_lists_the_keys() -> None:
    env = make(ID)
    env.reset(_task("easy", seed=1))
    env.step(env.expert())
    obs = env.step("lookup[favourite_colour]")
    assert obs.info["invalid_kind"] == "invalid_action"
    assert "has no key 'favourite_colour'" in obs.text and "Its keys:" in obs.text


def test_lookup_accepts_spaced_key_names() -> None:
    env = make(ID)
    env.reset(_task("easy", seed=1))
    env.step(env.expert())
    key = env.expert()[len("lookup[") : -1]
    obs = env.step(f"lookup[{key.replace('_', ' ').upper()}]")
    assert not obs.info["invalid"] and obs.text.startswith(f"{key} of ")


def test_near_miss_search_suggests_the_name_and_keeps_the_page() -> None:
    env = make(ID)
    task = _task("easy", seed=3)
    env.reset(task)
    name = env.expert()[len("search[") : -1]
    env.step(f"search[{name}]")
    before = env.available_actions()
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    obs = env.step(f"search[{typo}]")
    assert obs.info["invalid_kind"] == "invalid_action"
    assert f"Could not find [{typo}]" in obs.text and name in obs.text
    assert env.available_actions() == before
    assert env.step(f"search[{name.lower()}]").text.startswith(name)  # case-insensitive


def test_missing_brackets_get_a_corrected_example() -> None:
    env = make(ID)
    env.reset(_task("easy"))
    obs = env.step("search Some Place")
    assert obs.info["invalid_kind"] == "malformed"
    assert "search[Some Place]" in obs.text
    obs = env.step("fly[away]")
    assert obs.info["invalid_kind"] == "malformed" and "Unknown tool 'fly'" in obs.text
    obs = env.step("finish[]")
    assert obs.info["invalid_kind"] == "malformed" and "answer is missing" in obs.text


def test_calculator_errors_are_invalid_actions_with_feedback() -> None:
    env = make(ID)
    env.reset(_task("hard"))
    obs = env.step("calculate[1 / 0]")
    assert obs.info["invalid_kind"] == "invalid_action" and "division by zero" in obs.text
    obs = env.step("calculate[__import__('os').getcwd()]")
    assert obs.info["invalid_kind"] == "invalid_action" and "not allowed" in obs.text
    obs = env.step("calculate[(1200 + 35) * 2]")
    assert not obs.info["invalid"] and obs.text.endswith("= 2470")


def test_tool_calls_are_counted_per_tool_including_refused_calls() -> None:
    env = make(ID)
    env.reset(_task("easy", seed=7))
    env.step(env.expert())  # search
    env.step("lookup[no_such_key]")  # refused, still a call
    env.step("lookup no brackets")  # malformed: not a tool call
    env.step("calculate[2 + 2]")
    obs = env.step(env.expert())  # lookup
    assert obs.info["tool_calls"] == 4
    assert obs.info["tool_calls_by_tool"] == {"search": 1, "lookup": 2, "calculate": 1, "finish": 0}
    assert obs.info["optimal_tool_calls"] == 3
    obs = env.step(env.expert())  # finish
    assert obs.info["success"] and obs.info["tool_overuse"] == 2


def test_hard_tasks_have_look_alike_entities_on_offer() -> None:
    env = make(ID)
    task = _task("hard", seed=11)
    env.reset(task)
    name = env.expert()[len("search[") : -1]
    page = env.step(f"search[{name}]").text
    twins = re.search(r"Not to be confused with (.+)\.", page)
    assert twins is not None
    twin = twins.group(1).split(" or ")[0]
    assert twin != name and len(twin) == len(name)
    assert f"search[{twin}]" in env.available_actions()
    assert env.step(f"search[{twin}]").text.startswith(twin)
    # The easy family has none.
    env.reset(_task("easy", seed=11))
    assert "confused" not in env.step(env.expert()).text


def test_calculate_is_offered_once_its_inputs_are_known() -> None:
    env = make(ID)
    env.reset(_task("hard", seed=2))
    while not (action := env.expert()).startswith("calculate["):
        assert not any(a.startswith("calculate[") for a in env.available_actions())
        env.step(action)
    offered = [a for a in env.available_actions() if a.startswith("calculate[")]
    assert action in offered and len(offered) == 2  # the needed expression and a decoy


def test_finish_candidates_start_with_wrong_answers_only() -> None:
    env = make(ID)
    for seed in range(10):
        task = _task("easy", seed=seed)
        answer = normalize_answer(_answer(env, task))
        env.reset(task)
        finishes = [a for a in env.available_actions() if a.startswith("finish[")]
        assert len(finishes) == 2
        assert all(normalize_answer(a[len("finish[") : -1]) != answer for a in finishes)


def test_params_are_validated_and_used() -> None:
    env = ToolQAEnv()
    with pytest.raises(ValueError, match="bogus"):
        env.make_task(0, "train", "easy", bogus=1)
    with pytest.raises(ValueError, match="entities_per_kind"):
        env.make_task(0, "train", "easy", entities_per_kind=2)
    with pytest.raises(ValueError, match="similar_names"):
        env.make_task(0, "train", "easy", similar_names=True)
    plain = env.make_task(0, "train", "hard", similar_names=0)
    env.reset(plain)
    assert "confused" not in env.step(env.expert()).text


def test_restore_into_another_task_rebuilds_its_world() -> None:
    env = make(ID)
    a, b = _task("medium", seed=1), _task("hard", seed=1)
    env.reset(a)
    env.step(env.expert())
    snap = env.snapshot()
    env.reset(b)
    env.step(env.expert())
    env.restore(snap)
    obs = env.last_observation
    assert obs is not None and not obs.done
    while not obs.done:
        obs = env.step(env.expert())
    assert obs.info["success"] and obs.info["step"] == 5


def test_reset_text_holds_instruction_and_grammar() -> None:
    env = make(ID)
    task = _task("medium", "heldout", seed=9)
    text = env.reset(task).text
    assert task.instruction in text
    assert ToolQAEnv.action_help in text
    assert "No page is open" in text
