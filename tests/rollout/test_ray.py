"""The Ray rollout backend on a local, CPU-only Ray instance: same episodes as the local
backend, resume, a killed worker, a model built inside the workers, and the CLI flags."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from palaestra.cli import app
from palaestra.env import tasks
from palaestra.rollout import RolloutConfig, rollout
from palaestra.rollout._ray import RayRolloutBackend, _Chunk, worker_options
from palaestra.trajectory import Episode, RunStore


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    # Pinning the node to loopback keeps Ray inside the tests' network sandbox.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


def _config(**kw: Any) -> RolloutConfig:
    base: dict[str, Any] = {"env": "house-v1", "n": 6, "concurrency": 2, "max_turns": 40}
    return RolloutConfig(**(base | kw))


def _signature(store_dir: Path) -> dict[str, tuple[str, float, list[str | None]]]:
    with RunStore(store_dir, readonly=True) as store:
        eps = list(store.episodes())
    ids = [e.episode_id for e in eps]
    assert len(ids) == len(set(ids)), "an episode was stored twice"
    return {e.episode_id: (e.outcome, e.score, [s.action for s in e.steps]) for e in eps}


def _expected_ids(cfg: RolloutConfig) -> set[str]:
    suite = tasks(cfg.env, cfg.split, cfg.n, cfg.difficulty, start=cfg.start)
    return {f"{t.task_id}#{a}" for t in suite for a in range(cfg.epochs)}


def test_expert_on_ray_matches_the_local_run(ray_cluster: Any, tmp_path: Path) -> None:
    cfg = _config(agent="expert", epochs=2)
    local = rollout(cfg, tmp_path / "local", progress=False)
    on_ray = rollout(cfg.model_copy(update={"backend": "ray"}), tmp_path / "ray", progress=False)
    got = _signature(tmp_path / "ray")
    assert set(got) == _expected_ids(cfg) and len(got) == 12
    assert got == _signature(tmp_path / "local")
    assert on_ray.done == local.done == 12 and on_ray.outcomes == {"success": 12}
    assert on_ray.env_steps == local.env_steps > 0
    with RunStore(tmp_path / "ray", readonly=True) as store:
        run = store.run()
        assert run is not None and run.config["backend"] == "ray"
        assert {e.run_id for e in store.episodes()} == {"ray"}


def test_killed_workers_lose_and_duplicate_nothing(ray_cluster: Any, tmp_path: Path) -> None:
    # The random agent is seeded by task and attempt, so even with both workers killed
    # mid-run and their chunks re-run elsewhere, the episodes equal the local backend's.
    cfg = _config(agent="random", n=10, backend="ray", max_retries=1)
    store = RunStore(tmp_path / "ray")
    backend = RayRolloutBackend(cfg, run_id="ray", store=store, chunk_size=1)

    def kill_all_once(ep: Episode, s: Any) -> None:
        if s.done == 1:  # every worker is busy with (or about to get) a chunk
            for w in backend.workers:
                ray_cluster.kill(w)

    backend.on_episode = kill_all_once
    backend.run(tasks("house-v1", "train", 10), 1)
    store.close()
    assert backend.deaths == 2 and backend.requeued >= 1
    assert backend.stats.done == 10 and backend.stats.outcomes.get("error", 0) == 0
    rollout(cfg.model_copy(update={"backend": "local"}), tmp_path / "local", progress=False)
    got = _signature(tmp_path / "ray")
    assert set(got) == _expected_ids(cfg) and got == _signature(tmp_path / "local")


def test_cli_flags_and_resume_on_ray(ray_cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["rollout", "--env", "house-v1", "--agent", "expert", "--out", str(out)]
    ray_flags = ["--backend", "ray", "--ray-workers", "2"]
    res = CliRunner().invoke(app, [*base, "--n", "3"])  # a local start ...
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, [*base, "--n", "7", *ray_flags])  # ... resumed on Ray
    assert res.exit_code == 0, res.output
    assert "4 new episode(s), 3 already done" in res.output
    res = CliRunner().invoke(app, [*base, "--n", "7", *ray_flags])  # nothing left to run
    assert res.exit_code == 0 and "0 new episode(s), 7 already done" in res.output
    got = _signature(out)
    assert set(got) == _expected_ids(_config(n=7)) and {v[0] for v in got.values()} == {"success"}
    res = CliRunner().invoke(app, [*base, "--n", "7", "--backend", "spark"])
    assert res.exit_code == 2 and "backend" in res.output


def test_a_chunk_that_keeps_killing_workers_becomes_error_episodes(tmp_path: Path) -> None:
    cfg = _config(agent="expert", n=2, max_retries=1)
    store = RunStore(tmp_path)
    backend = RayRolloutBackend(cfg, run_id="r", store=store)
    chunk = _Chunk([[(t, 0)] for t in tasks("house-v1", "train", 2)])
    queue: Any = __import__("collections").deque()
    results: list[Episode] = []
    backend._requeue_or_fail(chunk, RuntimeError("boom"), queue, results)  # 1st: retried
    assert list(queue) == [chunk] and backend.requeued == 2 and not results
    backend._requeue_or_fail(chunk, RuntimeError("boom"), queue, results)  # 2nd: given up
    assert [e.outcome for e in results] == ["error", "error"] and len(store) == 2
    assert results[0].error is not None and results[0].error.source == "worker"
    assert store.done() == set()  # error episodes are retried by the next run
    store.close()


def _scripted_provider_hook() -> Callable[[], None]:
    # A closure, so Ray pickles it by value: the workers cannot import this test module.
    def hook() -> None:
        from palaestra.model import ScriptedModel, register_provider

        register_provider(
            "test-look",
            lambda name, **kw: ScriptedModel(lambda conv: "Thought: hm.\nAction: look"),
            override=True,
        )

    return hook


def test_a_model_is_built_and_batched_inside_each_worker(ray_cluster: Any, tmp_path: Path) -> None:
    cfg = _config(agent="react", model="test-look", n=4, max_turns=3, concurrency=4)
    cfg = cfg.model_copy(update={"backend": "ray"})
    store = RunStore(tmp_path)
    backend = RayRolloutBackend(
        cfg, run_id="m", store=store, chunk_size=4, worker_setup=_scripted_provider_hook()
    )
    eps = backend.run(tasks("house-v1", "train", 4), 1)
    store.close()
    assert len(eps) == 4 and {e.outcome for e in eps} == {"limit"}
    assert {e.model_id for e in eps} == {"test-look"}
    assert all([s.action for s in e.steps] == ["look"] * 3 for e in eps)
    s = backend.stats
    assert s.model_calls == 12 and s.batches == 3  # 4 episodes per batch, in one worker
    assert s.completion_tokens > 0


def test_reflexion_attempts_of_a_task_stay_in_one_chunk(tmp_path: Path) -> None:
    cfg = _config(agent="reflexion", model="tiny", n=3, epochs=3)
    store = RunStore(tmp_path)
    backend = RayRolloutBackend(cfg, store=store, chunk_size=2)
    chunks = backend._plan(tasks("house-v1", "train", 3), 3)
    store.close()
    assert [len(c.units) for c in chunks] == [1, 1, 1]  # 3 attempts > chunk of 2: one task each
    for c in chunks:
        assert [a for _, a in c.pairs()] == [0, 1, 2]
        assert len({t.task_id for t, _ in c.pairs()}) == 1
    assert backend.stats.total == 9


def test_worker_resources() -> None:
    hf = _config(agent="react", model="hf/some/model", ray_workers=4)
    assert worker_options(hf, cluster_gpus=2) == {"num_cpus": 1, "num_gpus": 0.5}
    assert worker_options(hf, cluster_gpus=0) == {"num_cpus": 1}
    served = _config(agent="react", model="openai/llama", ray_workers=4)
    assert worker_options(served, cluster_gpus=8) == {"num_cpus": 1}  # the server has the GPUs
    assert worker_options(_config(agent="expert"), cluster_gpus=8) == {"num_cpus": 1}


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    backend = RayRolloutBackend(_config(agent="expert", backend="ray"))
    with pytest.raises(ImportError, match=r'pip install "palaestra\[ray\]"'):
        backend.run(tasks("house-v1", "train", 1))


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "mini.yaml"
    suite.write_text(
        "id: mini-v1\nentries:\n"
        "  - {env: house-v1, seeds: [0, 1, 2], difficulty: easy}\n"
        "  - {env: toolqa-v1, split: test, n: 2, perturbations: [rename_verbs]}\n"
    )
    return suite


def test_eval_runs_on_ray_like_it_runs_locally(ray_cluster: Any, tmp_path: Path) -> None:
    # One driver (open_run) serves eval too: the suite's environments, agent wrapper and
    # episode metadata travel to the workers as engine parts.
    from palaestra.eval import EvalConfig, evaluate

    cfg = EvalConfig(suite=str(_suite(tmp_path)), agent="expert", epochs=2, concurrency=2)
    local = evaluate(cfg, tmp_path / "local", progress=False)
    on_ray = evaluate(cfg.model_copy(update={"backend": "ray"}), tmp_path / "ray", progress=False)
    assert on_ray.done == local.done == 10 and on_ray.outcomes == {"success": 10}
    assert _signature(tmp_path / "ray") == _signature(tmp_path / "local")
    with RunStore(tmp_path / "ray", readonly=True) as store:
        run = store.run()
        meta = {e.episode_id: e.metadata for e in store.episodes()}
    with RunStore(tmp_path / "local", readonly=True) as store:
        assert meta == {e.episode_id: e.metadata for e in store.episodes()}
    assert run is not None and run.kind == "eval" and run.config["backend"] == "ray"
    assert {m["suite"] for m in meta.values()} == {"mini-v1"}
    assert sorted(len(m["perturbations"]) for m in meta.values()) == [0] * 6 + [1] * 4
    res = CliRunner().invoke(
        app, ["eval", "--suite", cfg.suite, "--agent", "expert", "-k", "2", "--backend", "ray",
              "--out", str(tmp_path / "local")],
    )  # fmt: skip
    assert res.exit_code == 0 and "0 new episode(s), 10 already done" in res.output


def test_a_lost_eval_chunk_keeps_its_episode_metadata(tmp_path: Path) -> None:
    from palaestra.eval import EvalConfig
    from palaestra.eval._run import suite_parts
    from palaestra.eval._suites import get_suite, suite_tasks

    suite = get_suite(str(_suite(tmp_path)))
    items = suite_tasks(suite)
    cfg = EvalConfig(suite=suite.id, agent="expert", max_retries=0)
    store = RunStore(tmp_path / "run")
    backend = RayRolloutBackend(cfg, run_id="e", store=store, parts=suite_parts(suite, items))
    results: list[Episode] = []
    queue: Any = __import__("collections").deque()
    backend._requeue_or_fail(_Chunk([[(items[3].task, 0)]]), RuntimeError("x"), queue, results)
    store.close()
    [ep] = results
    assert ep.outcome == "error" and ep.metadata["suite"] == "mini-v1"
    assert ep.metadata["perturbations"] == ["rename_verbs"]


def test_the_ray_backend_and_the_run_driver_do_not_import_each_other() -> None:
    import ast

    import palaestra.rollout as pkg

    def imports(module: str) -> set[str]:
        tree = ast.parse((Path(pkg.__file__).parent / f"{module}.py").read_text())
        return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }

    assert not {"palaestra.rollout._run", "palaestra.rollout._driver"} & imports("_ray")
    assert not {"palaestra.rollout._run", "palaestra.rollout._ray"} & imports("_build")
    assert "palaestra.rollout._run" not in imports("_driver")
