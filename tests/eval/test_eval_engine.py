"""`evaluate` builds its engine the way `rollout` does: one code path, same threading."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from palaestra.env import Task
from palaestra.eval._run import EvalConfig, evaluate
from palaestra.eval._suites import SuiteEnv
from palaestra.rollout import RolloutConfig
from palaestra.rollout._run import build_engine


def _sandboxed() -> None:
    from palaestra.sandbox import available_backends

    if not any(why is None for b, why in available_backends().items() if b != "unsafe-local"):
        pytest.skip("no isolating sandbox backend on this machine")


def test_codeact_eval_runs_the_environment_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CodeAct step waits on a sandboxed interpreter: on the event loop's thread it would
    # stall every other episode (rollout already ran it in a thread; eval did not).
    _sandboxed()
    suite = tmp_path / "suite.yaml"
    suite.write_text("id: mini-code-v1\nentries:\n  - {env: toolqa-v1, split: test, n: 2}\n")
    threads: list[threading.Thread] = []
    reset = SuiteEnv.reset

    def recording_reset(self: SuiteEnv, task: Task) -> object:
        threads.append(threading.current_thread())
        return reset(self, task)

    monkeypatch.setattr(SuiteEnv, "reset", recording_reset)
    config = EvalConfig(suite=str(suite), agent="codeact-expert", concurrency=2)
    stats = evaluate(config, tmp_path / "run", progress=False)
    assert stats.outcomes == {"success": 2}
    assert len(threads) == 2 and threading.main_thread() not in threads


@pytest.mark.parametrize(("agent", "in_thread"), [("codeact", True), ("react", False)])
def test_one_engine_builder_for_rollout_and_eval(agent: str, in_thread: bool) -> None:
    from palaestra.model import ScriptedModel

    model = ScriptedModel(["x"])
    rollout = build_engine(
        RolloutConfig(env="toolqa-v1", agent=agent), model, run_id="r", store=None
    )
    assert rollout.env_in_thread is in_thread
    remote = build_engine(
        RolloutConfig(env="toolqa-v1", agent=agent, env_url="http://127.0.0.1:1"),
        model,
        run_id="r",
        store=None,
    )
    assert remote.env_in_thread is True
