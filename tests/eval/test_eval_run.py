"""`evaluate` and `palaestra eval`: suites through the rollout engine, metadata, resume, CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from palaestra.agent import ExpertAgent, attempt_seed
from palaestra.env import EnvError, ToyEnv, make
from palaestra.eval._run import EvalConfig, evaluate, load_eval_config
from palaestra.eval._suites import get_suite, split_perturbation, suite_tasks
from palaestra.model import Completion, Conversation, GenerationConfig, ScriptedModel
from palaestra.rollout import RolloutEngine
from palaestra.trajectory import Episode, RunStore


def _episodes(out: Path) -> list[Episode]:
    with RunStore(out, readonly=True) as store:
        return list(store.episodes())


def _success(eps: Sequence[Episode]) -> float:
    scored = [e for e in eps if e.outcome != "error"]
    return sum(e.outcome == "success" for e in scored) / len(scored)


@pytest.mark.parametrize("suite", ["heldin-v1", "heldout-v1"])
def test_expert_solves_and_random_fails_the_main_suites(tmp_path: Path, suite: str) -> None:
    expected = {st.task.task_id: st for st in suite_tasks(get_suite(suite))}
    stats = evaluate(EvalConfig(suite=suite, agent="expert"), tmp_path / "expert", progress=False)
    assert stats.done == 60 and stats.outcomes == {"success": 60}
    eps = _episodes(tmp_path / "expert")
    assert {e.task.task_id for e in eps} == set(expected)
    group = "heldin" if suite == "heldin-v1" else "heldout"
    for ep in eps:
        assert ep.metadata["suite"] == suite
        assert ep.metadata["suite_group"] == group
        assert ep.metadata["perturbations"] == []
        assert ep.metadata["base_task_id"] == ep.task.task_id
    with RunStore(tmp_path / "expert", readonly=True) as store:
        run = store.run()
    assert run is not None and run.kind == "eval" and run.agent == "expert"
    assert run.config["suite"] == suite and run.config["epochs"] == 1

    evaluate(EvalConfig(suite=suite, agent="random"), tmp_path / "random", progress=False)
    rand = _episodes(tmp_path / "random")
    outcomes = Counter(e.outcome for e in rand)
    assert len(rand) == 60 and outcomes["error"] == 0
    assert _success(rand) < 0.25 and outcomes["limit"] > 0  # mostly env step limits


def test_perturbed_suite_runs_and_episodes_carry_the_perturbation(tmp_path: Path) -> None:
    stats = evaluate(
        EvalConfig(suite="perturbed-v1", agent="expert"), tmp_path / "p", progress=False
    )
    assert stats.outcomes == {"success": 96}
    heldin = {st.task.task_id for st in suite_tasks(get_suite("heldin-v1"))}
    seen: Counter[str] = Counter()
    for ep in _episodes(tmp_path / "p"):
        plain, perts, _ = split_perturbation(ep.task)
        assert ep.metadata["suite_group"] == "perturbed"
        assert ep.metadata["perturbations"] == list(perts) == ep.task.params["perturb"]
        assert ep.metadata["base_task_id"] == plain.task_id in heldin
        assert ep.steps[-1].info["perturbations"] == list(perts)  # the env really was perturbed
        seen[perts[0]] += 1
        if perts == ("rename_verbs",):
            # The system prompt shows the renamed verbs the expert then uses.
            verb = ep.steps[0].action.split("[")[0].split()[0]  # type: ignore[union-attr]
            assert verb in ep.messages[0].content
    assert set(seen.values()) == {24}


def test_resume_runs_only_what_is_missing_and_refuses_changes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = EvalConfig(suite="family-toolqa-v1", agent="random", epochs=1)
    first = evaluate(cfg, out, progress=False)
    assert (first.done, first.skipped) == (54, 0)
    again = evaluate(cfg, out, progress=False)
    assert (again.done, again.skipped) == (0, 54)
    more = evaluate(cfg.model_copy(update={"epochs": 2, "concurrency": 2}), out, progress=False)
    assert (more.done, more.skipped) == (54, 54)
    eps = _episodes(out)
    assert Counter(e.attempt for e in eps) == {0: 54, 1: 54}
    with pytest.raises(ValueError, match="max_turns: 100 -> 5"):
        evaluate(cfg.model_copy(update={"max_turns": 5}), out, progress=False)
    with pytest.raises(ValueError, match="suite: 'family-toolqa-v1' -> 'heldin-v1'"):
        evaluate(cfg.model_copy(update={"suite": "heldin-v1"}), out, progress=False)


class _SeedRecorder(ScriptedModel):
    """A scripted model that also records the sampling seed of every prompt."""

    def __init__(self) -> None:
        super().__init__(lambda conv: "Thought: stop.\nAction: look")
        self.seeds: list[tuple[str, int | None]] = []

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        for p in prompts:
            self.seeds.append((p[1].content, config.seed if config else None))
        return super().generate(prompts, config)


def test_react_agent_sees_renamed_verbs_and_epochs_sample_independently(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "id: renamed-v1\nentries:\n"
        "  - {env: house-v1, seeds: [0, 1], difficulty: easy, perturbations: [rename_verbs]}\n"
    )
    model = _SeedRecorder()
    cfg = EvalConfig(
        suite=str(suite),
        agent="react",
        model="scripted",
        epochs=3,
        max_turns=2,
        temperature=0.7,
        seed=5,
    )
    stats = evaluate(cfg, tmp_path / "r", model=model, progress=False)
    assert stats.done == 6 and stats.outcomes == {"limit": 6}
    for ep in _episodes(tmp_path / "r"):
        assert ep.model_id == "scripted" and ep.metadata["suite"] == "renamed-v1"
        plain, perts, seed = split_perturbation(ep.task)
        ref = make("house-v1", perturbations=list(perts), perturbation_seed=seed)
        ref.reset(plain)
        system = ep.messages[0].content
        assert ref.action_help in system and make("house-v1").action_help not in system
    # Each epoch samples with its own seed (a seeded server would repeat itself otherwise).
    seeds = {s for _, s in model.seeds}
    assert seeds == {5, attempt_seed(5, 1), attempt_seed(5, 2)}
    assert len(seeds) == 3
    with RunStore(tmp_path / "r", readonly=True) as store:
        run = store.run()
    assert run is not None and run.config["suite"] == "renamed-v1"
    assert run.config["suite_definition"]["entries"][0]["env"] == "house-v1"


def test_greedy_epochs_keep_the_configured_seed(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("id: one-v1\nentries:\n  - {env: toolqa-v1, seeds: [0]}\n")
    model = _SeedRecorder()
    cfg = EvalConfig(suite=str(suite), agent="react", epochs=2, max_turns=1, seed=9)
    evaluate(cfg, tmp_path / "g", model=model, progress=False)
    assert [s for _, s in model.seeds] == [9, 9]


def test_engine_records_episode_metadata_on_error_episodes() -> None:
    def broken(action: str) -> None:
        raise EnvError("simulator died")

    task = ToyEnv().make_task(0)
    engine = RolloutEngine(
        ExpertAgent(),
        lambda: ToyEnv(on_step=broken),
        max_retries=0,
        episode_metadata=lambda t, a: {"suite": "x-v1", "attempt_seen": a, "task": t.task_id},
    )
    [ep] = engine.run([task], attempts=1)
    assert ep.outcome == "error"
    assert ep.metadata == {"suite": "x-v1", "attempt_seen": 0, "task": task.task_id}


def test_config_validation_and_file_precedence(tmp_path: Path) -> None:
    cfg_file = tmp_path / "e.yaml"
    cfg_file.write_text("suite: heldout-v1\nagent: random\nepochs: 3\n")
    cfg = load_eval_config(cfg_file, epochs=2, suite=None)
    assert (cfg.suite, cfg.agent, cfg.epochs) == ("heldout-v1", "random", 2)
    cfg_file.write_text("suite: heldout-v1\nepoch: 3\n")
    with pytest.raises(ValueError, match="unknown key\\(s\\) epoch; valid keys are"):
        load_eval_config(cfg_file)
    with pytest.raises(ValueError, match=r"unknown agent 'codact'.*; choose one of react, "):
        load_eval_config(suite="heldin-v1", agent="codact")
    with pytest.raises(ValueError, match="suite: Field required"):
        load_eval_config(agent="expert")
    with pytest.raises(ValueError, match="needs --model"):
        evaluate(EvalConfig(suite="heldin-v1"), tmp_path / "m", progress=False)


def _app() -> typer.Typer:
    from palaestra.cli.eval import eval_cmd

    app = typer.Typer()
    app.command("eval")(eval_cmd)
    app.command("other")(lambda: None)  # two commands: typer keeps the subcommand name
    return app


def test_eval_command(tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    out = tmp_path / "cli"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent: random\nepochs: 1\n")
    args = ["eval", "--suite", "family-maze-v1", "-c", str(cfg), "--epochs", "2", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    for group in ("heldin", "heldout", "perturbed", "overall", "pass^2"):
        assert group in res.output
    assert "108 new episode(s), 0 already done" in res.output
    eps = _episodes(out)
    assert len(eps) == 108 and {e.agent for e in eps} == {"random"}
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "0 new episode(s), 108 already done" in res.output
    res = runner.invoke(app, [*args[:-2], "--agent", "expert", "--out", str(out)])
    assert res.exit_code == 2 and "agent: 'random' -> 'expert'" in res.output
    res = runner.invoke(
        app, ["eval", "--suite", "heldin-v1", "--agent", "codact", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "unknown agent 'codact'" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad-v1\nentries:\n  - {env: house-v1, n: 2, split: dev}\n")
    res = runner.invoke(
        app, ["eval", "--suite", str(bad), "--agent", "expert", "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 2 and "entries.0.split" in res.output
    assert not (tmp_path / "y").exists()  # nothing is written for a bad suite
