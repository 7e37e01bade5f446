"""The rollout engine: batching, outcomes, limits, retries, resume, and SIGKILL safety."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from palaestra.agent import ExpertAgent, ReactAgent
from palaestra.env import EnvError, ToyEnv
from palaestra.model import (
    ChatMessage,
    Completion,
    Conversation,
    GenerationConfig,
    ScriptedModel,
)
from palaestra.rollout import Limits, RolloutEngine, load_config
from palaestra.trajectory import RunStore, StoreError

HERE = Path(__file__).parent


def _tasks(n: int) -> list:  # type: ignore[type-arg]
    env = ToyEnv()
    return [env.make_task(i, "train", "hard") for i in range(n)]


def _expert_script(conv: Sequence[ChatMessage]) -> str:
    last = conv[-1].content
    pos = int(last.rsplit("You are at ", 1)[1].rstrip(".")) if "You are at" in last else 0
    target = int(conv[1].content.split("number ")[1].split(".")[0])
    return "Action: " + ("stop" if pos == target else "inc" if pos < target else "dec")


def test_model_calls_are_batched_across_episodes() -> None:
    model = ScriptedModel(_expert_script)
    engine = RolloutEngine(ReactAgent(), ToyEnv, model, concurrency=16)
    episodes = engine.run(_tasks(16))
    assert len(episodes) == 16 and all(e.outcome == "success" for e in episodes)
    assert max(model.batch_sizes) == 16 and model.batch_sizes[0] == 16
    assert engine.stats.mean_batch > 4
    sequential = ScriptedModel(_expert_script)
    RolloutEngine(ReactAgent(), ToyEnv, sequential, concurrency=1).run(_tasks(4))
    assert set(sequential.batch_sizes) == {1}


def test_episode_fields_are_filled() -> None:
    ep = RolloutEngine(ExpertAgent(), ToyEnv, run_id="r1").run(_tasks(1))[0]
    assert ep.run_id == "r1" and ep.agent == "expert" and ep.outcome == "success"
    assert ep.score == 1.0 and ep.progress == 1.0 and ep.n_steps == len(ep.steps) > 0
    assert ep.messages[0].role == "system" and ep.wall_seconds > 0
    assert ep.finished_at >= ep.started_at


def test_env_errors_are_retried_then_recorded_as_error_not_zero() -> None:
    made: list[int] = []

    def factory() -> ToyEnv:
        made.append(1)

        def boom(action: str) -> None:
            raise EnvError("env server went away")

        return ToyEnv(on_step=boom)

    engine = RolloutEngine(ExpertAgent(), factory, max_retries=2)
    [ep] = engine.run(_tasks(1))
    assert ep.outcome == "error" and ep.score == 0.0
    assert ep.error is not None and ep.error.type == "EnvError" and "went away" in ep.error.message
    assert "Traceback" in ep.error.traceback and ep.error.source == "env"
    assert engine.stats.retries == 2 and len(made) == 3  # a fresh env per retry


def test_a_transient_error_is_retried_to_success() -> None:
    failures = iter([True, False])

    def factory() -> ToyEnv:
        fail = next(failures, False)

        def maybe(action: str) -> None:
            if fail:
                raise EnvError("flaky")

        return ToyEnv(on_step=maybe)

    engine = RolloutEngine(ExpertAgent(), factory, max_retries=1)
    [ep] = engine.run(_tasks(1))
    assert ep.outcome == "success" and engine.stats.retries == 1


def test_model_errors_are_error_outcomes() -> None:
    model = ScriptedModel(["Action: inc"])  # runs out of outputs on the second call
    [ep] = RolloutEngine(ReactAgent(), ToyEnv, model, max_retries=0).run(_tasks(1))
    assert ep.outcome == "error" and ep.error is not None and ep.error.source == "model"


def test_bugs_are_not_swallowed() -> None:
    def buggy(action: str) -> None:
        raise ZeroDivisionError("bug")

    engine = RolloutEngine(ExpertAgent(), lambda: ToyEnv(on_step=buggy))
    with pytest.raises(ZeroDivisionError):
        engine.run(_tasks(1))


def test_token_and_time_limits_end_as_limit() -> None:
    model = ScriptedModel(lambda conv: "Thought: " + "blah " * 50 + "\nAction: dec")
    engine = RolloutEngine(ReactAgent(), ToyEnv, model, limits=Limits(max_tokens=200))
    [ep] = engine.run(_tasks(1))
    assert ep.outcome == "limit" and ep.limit_reason == "tokens"
    assert ep.messages and ep.messages[-1].role == "assistant"

    class SlowModel(ScriptedModel):
        async def agenerate(
            self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
        ) -> list[Completion]:
            await asyncio.sleep(0.2)
            return self.generate(prompts, config)

    slow = SlowModel(lambda conv: "Action: dec")
    engine = RolloutEngine(ReactAgent(), ToyEnv, slow, limits=Limits(max_seconds=0.3))
    [ep] = engine.run(_tasks(1))
    assert ep.outcome == "limit" and ep.limit_reason == "wall_time"


def test_resume_runs_only_what_is_missing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    tasks = _tasks(6)
    engine = RolloutEngine(ExpertAgent(), ToyEnv, store=store)
    assert len(engine.run(tasks[:4], attempts=2)) == 8
    engine2 = RolloutEngine(ExpertAgent(), ToyEnv, store=store)
    new = engine2.run(tasks, attempts=2)
    assert len(new) == 4 and engine2.stats.skipped == 8
    assert len(store) == 12
    store.close()


def test_reflexion_attempts_run_in_order() -> None:
    from palaestra.agent import ReflexionAgent

    def script(conv: Sequence[ChatMessage]) -> str:
        if "You failed" in conv[-1].content:
            return "lesson"
        return "Action: dec"

    agent = ReflexionAgent(max_steps=2)
    eps = RolloutEngine(agent, ToyEnv, ScriptedModel(script), concurrency=4).run(
        _tasks(1), attempts=3
    )
    assert [e.attempt for e in eps] == [0, 1, 2]
    assert len(agent.memory[eps[0].task.task_id]) == 3


def test_rollout_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("env: toy-v1\nconcurrenci: 4\n")
    with pytest.raises(ValueError, match="unknown key\\(s\\) concurrenci"):
        load_config(bad)
    bad.write_text("env: toy-v1\nconcurrency: 0\n")
    with pytest.raises(ValueError, match="concurrency"):
        load_config(bad)
    good = tmp_path / "g.yaml"
    good.write_text("env: toy-v1\nconcurrency: 4\nn: 3\n")
    cfg = load_config(good, n=7, concurrency=None)
    assert (cfg.concurrency, cfg.n) == (4, 7)  # flag > file > default


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, str(HERE / "_kill_target.py"), str(run_dir)]
    rng = random.Random(0)
    # Kill when the store reaches each of these counts, plus a random delay so
    # some kills land between episodes and some in the middle of one.
    targets = sorted(rng.sample(range(1, 76), 12))
    counts: list[int] = []
    for target in targets:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with RunStore(run_dir, readonly=True) as store:
                    if len(store) >= target:
                        break
            except StoreError:  # not created yet
                pass
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.03))
        assert proc.poll() is None, f"the run finished before the kill at {target}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with RunStore(run_dir, readonly=True) as store:
            counts.append(len(store))
    assert len(set(counts)) >= 10, f"the kills did not land at 10 different points: {counts}"
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert b"COMPLETE" in done.stdout, done.stderr.decode()[-2000:]
    with RunStore(run_dir, readonly=True) as store:
        eps = list(store.episodes())
    ids = Counter(e.episode_id for e in eps)
    assert len(eps) == 80 and all(c == 1 for c in ids.values())
    assert {e.attempt for e in eps} == {0, 1}
    assert all(e.outcome in ("success", "failure", "limit") for e in eps)
