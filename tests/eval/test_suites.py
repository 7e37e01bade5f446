"""Suites: pinned built-in panels, split hygiene, perturbed task ids, user YAML suites, SuiteEnv."""

from __future__ import annotations

from pathlib import Path

import pytest

from palaestra.env import PERTURBATIONS, make, tasks
from palaestra.eval._suites import (
    Suite,
    SuiteEnv,
    get_suite,
    list_suites,
    load_suite,
    perturbed_task,
    split_perturbation,
    suite_fingerprint,
    suite_tasks,
)

FAMILIES = ("shop-v1", "house-v1", "toolqa-v1", "maze-v1")

# Same suite id ⇒ same tasks, forever: a failure here means a built-in suite (or the
# task id scheme) changed meaning. Publish a new version (e.g. heldin-v2) instead.
GOLDEN: dict[str, tuple[int, str]] = {
    "family-house-v1": (54, "d85e8132a91e5caf"),
    "family-maze-v1": (54, "7731a68bf44ac436"),
    "family-shop-v1": (54, "b296047aae7907ad"),
    "family-toolqa-v1": (54, "62dc8c757fc196fc"),
    "heldin-v1": (60, "6b17379dfe68d9a3"),
    "heldout-v1": (60, "ee6c9ee55e0aefbb"),
    "injection-v1": (60, "b0957d9c3557df3d"),
    "perturbed-v1": (96, "56b95a2ac7c9e51e"),
    "recovery-v1": (60, "844018fb29de4a99"),
    "safety-v1": (120, "c1e282af5e70b554"),
}
#: Suites with third-party environments: pinned in the integration tier (they need extras).
EXTERNAL_GOLDEN: dict[str, tuple[int, str]] = {
    "heldout-v2": (82, "71b4b76cc96c6f81"),
}


def _ids(suite_id: str) -> list[str]:
    return [st.task.task_id for st in suite_tasks(get_suite(suite_id))]


def test_builtin_suites_are_pinned() -> None:
    assert list_suites() == sorted([*GOLDEN, *EXTERNAL_GOLDEN])
    for suite_id, (count, fingerprint) in GOLDEN.items():
        assert (len(_ids(suite_id)), suite_fingerprint(get_suite(suite_id))) == (
            count,
            fingerprint,
        ), suite_id
    # Readable anchors next to the hashes.
    heldin = _ids("heldin-v1")
    assert heldin[0] == "shop-v1/test/easy/0-1bc78f8a24"
    assert heldin[-1] == "maze-v1/test/hard/14-2fbdac6119"
    assert _ids("heldout-v1")[0] == "shop-v1/heldout/easy/0-c040b54c74"


@pytest.mark.integration
def test_external_suites_are_pinned() -> None:
    for module in ("textworld", "scienceworld", "minigrid", "miniwob"):
        pytest.importorskip(module)
    for suite_id, (count, fingerprint) in EXTERNAL_GOLDEN.items():
        assert (len(_ids(suite_id)), suite_fingerprint(get_suite(suite_id))) == (
            count,
            fingerprint,
        ), suite_id
    v2 = suite_tasks(get_suite("heldout-v2"))
    v1 = {st.task.task_id for st in suite_tasks(get_suite("heldout-v1"))}
    assert v1 <= {st.task.task_id for st in v2}
    external = {st.task.env_id.split("/")[0] for st in v2 if st.group == "external"}
    assert external == {"textworld", "scienceworld", "babyai", "miniwob"}


def test_builtin_suite_composition() -> None:
    heldin = suite_tasks(get_suite("heldin-v1"))
    heldout = suite_tasks(get_suite("heldout-v1"))
    for items, split, group in ((heldin, "test", "heldin"), (heldout, "heldout", "heldout")):
        assert {st.group for st in items} == {group}
        assert {st.task.split for st in items} == {split}
        assert not any(st.perturbations for st in items)
        for env_id in FAMILIES:
            family = [st.task for st in items if st.task.env_id == env_id]
            assert len(family) == 15
            assert (
                sorted(t.difficulty for t in family) == ["easy"] * 5 + ["hard"] * 5 + ["medium"] * 5
            )
    perturbed = suite_tasks(get_suite("perturbed-v1"))
    heldin_ids = {st.task.task_id for st in heldin}
    assert {st.group for st in perturbed} == {"perturbed"}
    assert {st.perturbations for st in perturbed} == {
        (p,) for p in PERTURBATIONS if p != "inject_mistake"
    }
    recovery = suite_tasks(get_suite("recovery-v1"))
    assert {st.group for st in recovery} == {"recovery"}
    assert {st.perturbations for st in recovery} == {("inject_mistake",)}
    # the same tasks as heldin-v1, each with one injected mistake
    assert [split_perturbation(st.task)[0].task_id for st in recovery] == [
        st.task.task_id for st in heldin
    ]
    for st in perturbed:
        plain, perts, _ = split_perturbation(st.task)
        assert perts == st.perturbations
        assert plain.task_id in heldin_ids  # paired with its held-in original
        assert st.task.task_id != plain.task_id
    # A family suite is that family's slices of the three main suites.
    shop = {st.task.task_id for st in suite_tasks(get_suite("family-shop-v1"))}
    main = {
        st.task.task_id
        for s in ("heldin-v1", "heldout-v1", "perturbed-v1")
        for st in suite_tasks(get_suite(s))
        if st.task.env_id == "shop-v1"
    }
    assert shop == main


def test_heldout_and_heldin_share_nothing_with_training_tasks() -> None:
    for env_id in FAMILIES:
        train = tasks(env_id, "train", 300)
        train_ids = {t.task_id for t in train}
        train_text = {t.instruction for t in train}
        for suite_id in ("heldin-v1", "heldout-v1", "perturbed-v1"):
            items = [st.task for st in suite_tasks(get_suite(suite_id)) if st.task.env_id == env_id]
            assert items and not {t.task_id for t in items} & train_ids
            assert all(t.split != "train" for t in items)
        # Held-out tasks use vocabulary and templates training never shows.
        heldout = [
            st.task for st in suite_tasks(get_suite("heldout-v1")) if st.task.env_id == env_id
        ]
        assert not {t.instruction for t in heldout} & train_text, env_id


def test_perturbed_task_ids_are_canonical_and_round_trip() -> None:
    plain = tasks("house-v1", "test", 1)[0]
    a = perturbed_task(plain, ["rename_verbs", "distractors"], seed=3)
    b = perturbed_task(plain, ["distractors", "rename_verbs"], seed=3)
    assert a.task_id == b.task_id != plain.task_id
    assert a.params == {"perturb": ["rename_verbs", "distractors"], "perturb_seed": 3}
    assert perturbed_task(plain, ["distractors"], seed=4).task_id != a.task_id
    assert perturbed_task(plain, []) is plain
    assert split_perturbation(a) == (plain, ("rename_verbs", "distractors"), 3)
    assert split_perturbation(plain) == (plain, (), 0)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturbed_task(plain, ["upside_down"])  # type: ignore[list-item]
    # The families refuse the perturbation params: that is why SuiteEnv strips them.
    with pytest.raises(ValueError):
        make("house-v1").reset(a)


def test_suite_env_plays_a_perturbed_task_like_the_perturb_wrapper() -> None:
    st = next(
        st
        for st in suite_tasks(get_suite("perturbed-v1"))
        if st.task.env_id == "house-v1" and st.perturbations == ("rename_verbs",)
    )
    plain, perts, seed = split_perturbation(st.task)
    ref = make("house-v1", perturbations=list(perts), perturbation_seed=seed)
    ref_obs = ref.reset(plain)
    env = SuiteEnv()
    env.select(st.task)
    # The agent's system prompt is built before reset: it must show this task's verbs.
    assert env.action_help == ref.action_help != make("house-v1").action_help
    obs = env.reset(st.task)
    assert obs.text == ref_obs.text
    assert env.task == st.task  # the episode records the suite task
    snap = env.snapshot()
    for _ in range(3):
        action = env.expert()
        assert env.step(action).text == ref.step(ref.expert()).text
    # A plain task on the same SuiteEnv switches environments and back.
    other = tasks("maze-v1", "test", 1)[0]
    assert env.reset(other).text == make("maze-v1").reset(other).text
    assert env.action_help == make("maze-v1").action_help
    env.restore(snap)
    assert env.task == st.task and env.last_observation is not None
    last = env.last_observation
    while not last.done:
        last = env.step(env.expert())
    assert last.info["success"] is True
    env.close()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def test_user_suite_from_yaml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
id: mini-v1
description: two slices
entries:
  - {env: house-v1, split: heldout, seeds: [7, 3], difficulty: hard}
  - env: toolqa-v1
    n: 3
    start: 10
    difficulty: [easy, medium]
    perturbations: [paraphrase_instruction, shuffle_actions]
    perturbation_seed: 2
""",
    )
    suite = get_suite(str(path))
    assert suite == get_suite(path) == load_suite(path)
    assert suite.id == "mini-v1" and suite.version == 1
    items = suite_tasks(suite)
    assert [(st.task.seed, st.task.difficulty, st.group) for st in items] == [
        (7, "hard", "heldout"),
        (3, "hard", "heldout"),
        (10, "easy", "perturbed"),
        (11, "medium", "perturbed"),
        (12, "easy", "perturbed"),
    ]
    assert items[2].perturbations == ("paraphrase_instruction", "shuffle_actions")
    assert items[2].task.params["perturb_seed"] == 2
    assert items[0].task == tasks("house-v1", "heldout", 1, "hard", start=7)[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id: x-v1\nentries:\n  - {env: shop-v1, n: 2, sedes: 1}\n", "entries.0.sedes"),
        ("id: x-v1\nentries:\n  - {env: shop-v1, n: 2, split: dev}\n", "entries.0.split"),
        (
            "id: x-v1\nentries:\n  - {env: shop-v1, n: 2}\n  - {env: shp-v1, n: 1}\n",
            "entries.1.env: no environment 'shp-v1'",
        ),
        ("id: x-v1\nentries:\n  - {env: shop-v1, n: 2, seeds: [1]}\n", "exactly one of 'n'"),
        (
            "id: x-v1\nentries:\n  - {env: shop-v1, n: 1, params: {colour: 3}}\n",
            "entries.0 (shop-v1): shop: unknown param 'colour'",
        ),
        (
            "id: x-v1\nentries:\n  - {env: shop-v1, n: 1, perturbations: [flip]}\n",
            "entries.0.perturbations.0",
        ),
        (
            "id: x-v1\nentries:\n  - {env: shop-v1, n: 2}\n  - {env: shop-v1, seeds: [1], difficulty: medium}\n",
            "is in entries.0 and entries.1",
        ),
        ("id: mysuite\nentries:\n  - {env: shop-v1, n: 1}\n", "not versioned"),
        ("id: x-v1\nentries: []\n", "entries: List should have at least 1 item"),
        ("id: heldin-v1\nentries:\n  - {env: shop-v1, n: 1}\n", "is a built-in suite"),
        ("- just a list\n", "must hold a mapping"),
    ],
)
def test_user_suite_errors_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ValueError, match=r"suite\.yaml") as err:
        get_suite(str(path))
    assert message in str(err.value)


def test_unknown_suite_suggests_close_ids() -> None:
    with pytest.raises(ValueError, match="Did you mean 'heldin-v1'"):
        get_suite("heldin-v2")
    with pytest.raises(ValueError, match="does not exist"):
        get_suite("missing.yaml")
    assert isinstance(get_suite("heldin-v1"), Suite)
