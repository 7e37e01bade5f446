"""Registry: versioned ids, lazy entry points, plugins, task suites."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

import palaestra.env._registry as reg
from palaestra.env import StepLimit, ToyEnv, make, register, registry, spec, tasks


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg.registry()))
    register("toy-v1", ToyEnv, max_episode_steps=5)
    yield


def test_builtin_families_are_registered() -> None:
    assert {"shop-v1", "house-v1", "toolqa-v1", "maze-v1"} <= set(registry())


def test_the_builtin_table_is_what_the_registry_serves() -> None:
    from palaestra.env import BUILTIN_FAMILIES, BUILTIN_SPECS

    reg_now = registry()
    for row in BUILTIN_SPECS:
        got = reg_now[row.id]
        assert (got.entry_point, got.max_episode_steps, got.source) == (
            row.entry_point,
            row.max_episode_steps,
            "palaestra",
        )
    assert set(BUILTIN_FAMILIES) <= {row.id for row in BUILTIN_SPECS}


@pytest.mark.parametrize("bad", ["shop", "Shop-v1", "shop-1", "shop-vx", ""])
def test_unversioned_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="versioned"):
        register(bad, ToyEnv)


def test_entry_point_string_must_name_an_attribute() -> None:
    with pytest.raises(ValueError, match=r"package\.module:ClassName"):
        register("x-v1", "palaestra.env._toy.ToyEnv")


def test_ids_never_change_meaning() -> None:
    register("toy-v1", ToyEnv, max_episode_steps=5)  # same registration again: fine
    with pytest.raises(ValueError, match="never change"):
        register("toy-v1", "palaestra.env._toy:Other")
    register("toy-v1", "palaestra.env._toy:ToyEnv", override=True)
    assert spec("toy-v1").entry_point == "palaestra.env._toy:ToyEnv"


def test_unknown_id_error_lists_versions() -> None:
    with pytest.raises(KeyError, match="toy-v1"):
        spec("toy-v2")


def test_make_applies_step_limit_and_sets_id() -> None:
    env = make("toy-v1")
    assert isinstance(env, StepLimit) and env.max_steps == 5
    assert env.env_id == "toy-v1" and env.unwrapped.env_id == "toy-v1"
    env.reset(env.make_task(0))
    obs = None
    for _ in range(5):
        obs = env.step("dec")
    assert obs is not None and obs.truncated and obs.info["truncated_reason"] == "step_limit"
    assert not isinstance(make("toy-v1", max_episode_steps=0), StepLimit)


def test_make_passes_kwargs() -> None:
    calls: list[str] = []
    env = make("toy-v1", on_step=calls.append)
    env.reset(env.make_task(0))
    env.step("inc")
    assert calls == ["inc"]


def test_lazy_import_error_names_module() -> None:
    register("ghost-v1", "palaestra_not_installed.mod:Env")
    with pytest.raises(ImportError, match="palaestra_not_installed"):
        make("ghost-v1")


def test_tasks_are_deterministic_and_cycle_difficulty() -> None:
    a = tasks("toy-v1", "test", n=6)
    assert a == tasks("toy-v1", "test", n=6)
    assert [t.difficulty for t in a] == ["easy", "medium", "hard"] * 2
    assert [t.seed for t in tasks("toy-v1", n=3, start=10)] == [10, 11, 12]
    assert {t.difficulty for t in tasks("toy-v1", n=4, difficulty="hard")} == {"hard"}
    assert all(t.split == "test" for t in a)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dev"}, "split"),
        ({"difficulty": "insane"}, "difficulty"),
        ({"n": -1}, "n must be"),
    ],
)
def test_tasks_validates_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tasks("toy-v1", **kwargs)  # type: ignore[arg-type]


def plugin_register() -> None:
    register("acme/toy-v3", ToyEnv, source="acme-envs")


def test_plugins_register_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="acme", value=f"{__name__}:plugin_register", group=reg.ENTRY_POINT_GROUP)
    broken = EntryPoint(name="broken", value="nowhere_at_all:f", group=reg.ENTRY_POINT_GROUP)
    monkeypatch.setattr(reg, "entry_points", lambda group: [ep, broken])
    monkeypatch.setattr(reg, "_plugins_loaded", False)
    with pytest.warns(UserWarning, match="broken"):
        ids = registry()
    assert ids["acme/toy-v3"].source == "acme-envs"
    assert make("acme/toy-v3", max_episode_steps=0).env_id == "acme/toy-v3"


def plugin_register_without_source() -> None:
    register("acme/toy-v4", ToyEnv)  # the docs' example omits source=


def test_a_plugin_is_never_builtin_and_leaves_the_tiny_model_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from palaestra.data import tiny_corpus

    before = tiny_corpus()
    ep = EntryPoint(
        name="acme", value=f"{__name__}:plugin_register_without_source", group=reg.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(reg, "entry_points", lambda group: [ep])
    monkeypatch.setattr(reg, "_plugins_loaded", False)
    spec = registry()["acme/toy-v4"]
    assert spec.source == "plugin:acme"  # no distribution here; a real one gives its name
    assert tiny_corpus() == before  # the tokenizer corpus (and so tiny's hash) is unchanged
    reg._REGISTRY.pop("acme/toy-v4")
