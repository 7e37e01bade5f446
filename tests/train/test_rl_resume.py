"""Resume of an interrupted `train rl` run: checkpoints, stored config, episodes after the checkpoint."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

from palaestra.data import tiny_path  # noqa: E402
from palaestra.env import Task, ToyEnv  # noqa: E402
from palaestra.train import RLRunConfig  # noqa: E402
from palaestra.train import _rl as rl  # noqa: E402
from palaestra.trajectory import Episode, RunStore  # noqa: E402

MODEL = "tiny/micro"


class Killed(Exception):
    """Stands in for a crash (out of memory, a lost node) in the middle of a run."""


def _tasks(n: int = 2) -> list[Task]:
    return [ToyEnv().make_task(seed) for seed in range(n)]


def _config(**overrides: Any) -> RLRunConfig:
    base: dict[str, Any] = {
        "env": "toy-v1",
        "prompt": "compact",
        "n": 2,
        "num_generations": 2,
        "batch_size": 2,
        "max_steps": 4,
        "save_steps": 2,
        "max_turns": 1,
        "max_new_tokens": 4,
        "max_retries": 0,
        "learning_rate": 1e-2,
        "progress": False,
    }
    return RLRunConfig(**{**base, **overrides})


def _episodes(out: Path) -> list[Episode]:
    with RunStore(out / "episodes", readonly=True) as store:
        return list(store.episodes())


def _steps(episodes: list[Episode]) -> Counter[int]:
    return Counter(int(e.metadata["rl_step"]) for e in episodes)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny_path("micro"))


# ---- end to end ----------------------------------------------------------------------------


@pytest.mark.train
def test_a_killed_run_resumes_from_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed during step 3 (checkpoint at 2), rerun: 4 steps in all, as without the crash.

    Two tasks, one group per step: the resume lands at the start of epoch 1, where a
    fresh TRL sampler would draw epoch 0's task order (``order_by_epoch``).
    """
    from safetensors.torch import load_file

    task_list = _tasks()
    cfg = _config()
    whole = tmp_path / "whole"
    rl.train_rl(MODEL, cfg, whole, envs=ToyEnv, task_list=task_list)

    out = tmp_path / "killed"
    calls = 0
    real_score = rl.score

    def score(completions: Any, env_score: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:  # step index 3: after its episodes were stored, before it trains
            raise Killed("the process died")
        return real_score(completions, env_score, **kw)

    monkeypatch.setattr(rl, "score", score)
    with pytest.raises(Killed):
        rl.train_rl(MODEL, cfg, out, envs=ToyEnv, task_list=task_list)
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (out / "palaestra.json").exists()
    assert _steps(_episodes(out)) == {0: 2, 1: 2, 2: 2, 3: 2}
    capsys.readouterr()

    meta = rl.train_rl(MODEL, cfg, out, envs=ToyEnv, task_list=task_list)
    said = capsys.readouterr().err
    assert "resuming" in said and "from step 2 (checkpoint-2)" in said and "4 episode(s)" in said
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4  # global_step continued from 2; steps 3 and 4 ran once more
    whole_meta = rl.read_metadata(whole)
    assert [h["step"] for h in meta.log_history if "loss" in h] == [
        h["step"] for h in whole_meta.log_history if "loss" in h
    ]

    episodes = _episodes(out)
    ids = [(e.task.task_id, e.attempt) for e in episodes]
    assert len(ids) == len(set(ids)) == 12  # 4 rounds before the crash, 2 after the resume
    discarded = [e for e in episodes if e.metadata.get("rl_discarded")]
    kept = [e for e in episodes if not e.metadata.get("rl_discarded")]
    # Steps 2 and 3 were played by policies the resume threw away (step 2's update was never
    # checkpointed); they stay in the store, marked, and are played again.
    assert _steps(discarded) == {2: 2, 3: 2}
    assert all(e.metadata["rl_resumed_at"] == 2 for e in discarded)
    assert _steps(kept) == _steps(_episodes(whole))
    for e in discarded:  # the replay numbers its attempts above everything stored before
        replay = [
            k.attempt
            for k in kept
            if k.task.task_id == e.task.task_id and k.metadata["rl_step"] >= 2
        ]
        assert all(n > e.attempt for n in replay)
    # The round counter continued: the replayed rounds sample with rounds 2 and 3's seeds,
    # so (deterministic on CPU) they replay exactly what the uninterrupted run played.
    replayed = {(e.metadata["rl_round"], e.task.task_id, e.metadata["rl_group"]) for e in kept}
    assert {r for r, _, _ in replayed} == {0, 1, 2, 3}
    whole_msgs = Counter(
        (e.metadata["rl_step"], tuple(m.content for m in e.messages)) for e in _episodes(whole)
    )
    assert whole_msgs == Counter(
        (e.metadata["rl_step"], tuple(m.content for m in e.messages)) for e in kept
    )
    # Optimizer, scheduler and RNG state came back too: the same adapter as without the crash.
    a = load_file(str(whole / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].allclose(b[k]) for k in a)

    # A finished run is not trained again.
    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(rl, "build_rl_trainer", no_training)
    again = rl.train_rl(MODEL, cfg, out, envs=ToyEnv, task_list=task_list)
    assert "already holds a finished RL run" in capsys.readouterr().err
    assert again.log_history == meta.log_history and len(_episodes(out)) == 12


# ---- the pieces, without training ----------------------------------------------------------


def _header_only(out: Path, config: RLRunConfig, model: str = MODEL) -> None:
    with RunStore(out / "episodes") as store:
        store.write_run(rl._run_header(out / "episodes", model, config))  # pyright: ignore[reportPrivateUsage]


def test_resume_refuses_a_config_that_changes_what_is_trained(tmp_path: Path) -> None:
    cfg = _config()
    _header_only(tmp_path, cfg)
    with pytest.raises(ValueError, match=r"beta: 0\.04 -> 0\.5.*same settings"):
        rl.train_rl(MODEL, cfg.model_copy(update={"beta": 0.5}), tmp_path)
    with pytest.raises(ValueError, match="model: 'tiny/micro' -> 'tiny/small'"):
        rl.train_rl("tiny/small", cfg, tmp_path)
    # Where and how fast it runs may change.
    moved = cfg.model_copy(
        update={"concurrency": 2, "use_vllm": True, "vllm_mode": "server", "progress": True}
    )
    rl.check_resume(tmp_path, MODEL, moved)


def test_the_last_complete_checkpoint_is_resumed(tmp_path: Path) -> None:
    assert rl.last_checkpoint(tmp_path / "none") is None
    for step, complete in ((2, True), (4, True), (6, False), (10, True)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:  # the trainer writes trainer_state.json last
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-10" / "trainer_state.json").unlink()
    (tmp_path / "checkpoint-10" / "optimizer.pt").write_text("half")
    found = rl.last_checkpoint(tmp_path)
    assert found is not None and found == tmp_path / "checkpoint-4"
    assert rl.checkpoint_step(found) == 4


def test_rounds_before_a_step_follow_trl_generation_cadence() -> None:
    class Args:
        def __init__(self, ga: int, spg: int, iters: int) -> None:
            self.gradient_accumulation_steps = ga
            self.steps_per_generation = spg
            self.num_iterations = iters

    assert rl.rounds_before(Args(1, 1, 1), 7) == 7  # one rollout per optimizer step
    assert rl.rounds_before(Args(4, 4, 1), 7) == 7  # one rollout feeds a step's 4 micro-batches
    assert rl.rounds_before(Args(1, 1, 2), 6) == 3  # each rollout is reused for 2 steps


def _stored(task: Task, attempt: int, step: int, rnd: int) -> Episode:
    return Episode(
        run_id="rl",
        task=task,
        attempt=attempt,
        agent="react",
        model_id=MODEL,
        outcome="failure",
        metadata={"rl_step": step, "rl_round": rnd, "rl_group": 0},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "episodes") as s:
        yield s


def test_restore_marks_later_episodes_and_numbers_attempts_above_them(
    store: RunStore, tokenizer: Any
) -> None:
    a, b = _tasks()
    for attempt, step in enumerate((0, 0, 1, 1, 2, 2)):
        store.add(_stored(a, attempt, step, step))
    store.add(_stored(b, 0, 2, 2))
    rollout = rl.EngineRollout(_config(), [a, b], tokenizer, store=store, envs=ToyEnv)
    assert rollout.restore(step=2, rounds=2) == 3
    assert rollout.rounds == 2 and rollout.settings().seed == 2 * 1_000_003
    marked = {e.episode_id for e in store.episodes() if e.metadata.get("rl_discarded")}
    assert marked == {f"{a.task_id}#4", f"{a.task_id}#5", f"{b.task_id}#0"}
    # A second resume, earlier still, marks what the first one kept (and nothing twice).
    assert rollout.restore(step=1, rounds=1) == 2
    assert {e.metadata.get("rl_resumed_at") for e in store.episodes()} == {None, 1, 2}

    fresh = [_stored(a, 0, 1, 1), _stored(a, 1, 1, 1), _stored(b, 0, 1, 1)]

    class Sample:
        kept_turns, truncated = 1, False

    rollout._store(fresh, [Sample()] * 3, step=1)  # pyright: ignore[reportPrivateUsage]
    attempts = {
        (e.task.task_id, e.attempt) for e in store.episodes() if e.metadata["rl_round"] == 1
    }
    assert {(t, n) for t, n in attempts if n >= 6 or t == b.task_id} >= {
        (a.task_id, 6),
        (a.task_id, 7),
        (b.task_id, 1),
    }


def test_processes_number_their_attempts_apart(store: RunStore, tokenizer: Any) -> None:
    (a,) = _tasks(1)

    class Sample:
        kept_turns, truncated = 1, False

    for rank in (0, 1):
        rollout = rl.EngineRollout(_config(), [a], tokenizer, store=store, envs=ToyEnv)
        rollout.rank, rollout.world = rank, 2
        eps = [_stored(a, i, 0, 0) for i in range(2)]
        rollout._store(eps, [Sample()] * 2, step=0)  # pyright: ignore[reportPrivateUsage]
    assert sorted(e.attempt for e in store.episodes()) == [0, 1, 2, 3]


def test_each_epochs_task_order_depends_on_the_epoch_only() -> None:
    from trl.trainer.utils import RepeatSampler

    class Trainer:
        def _get_train_sampler(self, dataset: Any = None) -> Any:
            return RepeatSampler(list(range(8)), mini_repeat_count=2, batch_size=2, seed=3)

    def order(epochs: list[int]) -> list[int]:
        trainer = Trainer()
        rl.order_by_epoch(trainer)
        sampler = trainer._get_train_sampler()  # pyright: ignore[reportPrivateUsage]
        out: list[int] = []
        for epoch in epochs:  # the trainer calls set_epoch before iterating each epoch
            sampler.set_epoch(epoch)
            out = list(sampler)
        return out

    # A fresh sampler (a resumed trainer) in epoch 2 draws what a sampler that lived through
    # epochs 0 and 1 draws there; other epochs draw other orders.
    assert order([2]) == order([0, 1, 2])
    assert order([2]) != order([1]) and sorted(order([2])) == sorted(order([0]))
