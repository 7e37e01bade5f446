"""Outcome reward model: learns success from trajectories, held-out-task metrics, labels, sft reward.

The learning test is an easy case on purpose: shop-v1's final observation says
whether the purchase matched ("Well done!"), so the ORM can read success off the
end state. It checks the machinery (rendering, truncation, split, balance,
training, saving, loading, labelling), not that an ORM can judge subtle outcomes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("datasets")

from typer.testing import CliRunner

from palaestra.data import build_sft
from palaestra.rollout import load_config, rollout
from palaestra.train import (
    ORM_LABELS_FILE,
    ORMConfig,
    ORMLabel,
    ORMMeta,
    label_run,
    load_orm,
    load_orm_config,
    orm_metrics,
    read_orm_labels,
    read_orm_meta,
    render_episode,
    train_orm,
)
from palaestra.train._orm_data import ORMExample, encode, split_by_task
from palaestra.trajectory import Episode, RunStore

MODEL = "tiny/micro"
ENV = "shop-v1"
N_TASKS = 30


@pytest.fixture(autouse=True)
def _threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tasks by the expert (succeeds) and a random agent (mostly fails)."""
    root = tmp_path_factory.mktemp("orm-runs")
    out = {"expert": root / "expert", "random": root / "random"}
    for agent, path in out.items():
        cfg = load_config(None, env=ENV, agent=agent, n=N_TASKS, max_steps=10)
        rollout(cfg, path, progress=False)
    return out


def _episodes(run: Path) -> list[Episode]:
    with RunStore(run, readonly=True) as s:
        return list(s.episodes())


def _cfg(**kw: Any) -> ORMConfig:
    base: dict[str, Any] = {
        "method": "full",
        "learning_rate": 1e-3,
        "max_steps": 40,
        "batch_size": 8,
        "max_length": 256,
        "head_tokens": 32,
        "val_fraction": 0.3,
        "logging_steps": 5,
        "progress": False,
    }
    return ORMConfig(**(base | kw))


@pytest.fixture(scope="module")
def trained(
    runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ORMMeta]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("orm") / "orm"
    meta = train_orm(MODEL, [runs["expert"], runs["random"]], _cfg(), out)
    return out, meta


# ---- pieces ----------------------------------------------------------------------------


def test_render_keeps_instruction_and_end_state_not_outcome(runs: dict[str, Path]) -> None:
    ep = _episodes(runs["random"])[0]
    head, tail = render_episode(ep)
    assert ep.task.instruction in head
    assert tail.endswith(ep.steps[-1].observation)
    assert "Thought:" not in tail and "Thought:" in render_episode(ep, include_thoughts=True)[1]
    assert ep.outcome not in head + tail  # what the agent saw and did, never the label

    from transformers import AutoTokenizer

    from palaestra.train import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    full_tail = tok(tail, add_special_tokens=False)["input_ids"]
    ids = encode(tok, head, tail, max_length=64, head_tokens=8)
    assert len(ids) == 64 and len(full_tail) > 64
    assert ids[:8] == tok(head)["input_ids"][:8]  # the instruction's start stays
    assert ids[-20:] == full_tail[-20:]  # the end state stays
    assert (
        encode(tok, head, "short", 64, 8)
        == tok(head)["input_ids"][:8] + tok("short", add_special_tokens=False)["input_ids"]
    )


def test_split_is_by_task_and_stratified() -> None:
    exs = [ORMExample(f"t{i}", "", "", bool(j)) for i in range(20) for j in (0, 1)]
    exs += [ORMExample(f"f{i}", "", "", False) for i in range(10)]
    train, val = split_by_task(exs, 0.3, seed=0)
    assert len(train) + len(val) == len(exs)
    assert not {e.task_id for e in train} & {e.task_id for e in val}
    assert {e.label for e in val} == {True, False}
    assert sum(e.task_id.startswith("f") for e in val) == 3  # 30% of the failure-only stratum
    assert split_by_task(exs, 0.3, seed=0) == (train, val)  # deterministic
    with pytest.raises(ValueError, match="at least 2 tasks"):
        split_by_task([ORMExample("t", "", "", True)], 0.3, seed=0)


def test_metrics_known_values() -> None:
    m = orm_metrics([0.9, 0.8, 0.3, 0.6], [True, True, False, False], 0.5)
    assert (m.accuracy, m.recall, m.auroc) == (0.75, 1.0, 1.0)
    assert m.precision == pytest.approx(2 / 3)
    assert m.brier == pytest.approx((0.01 + 0.04 + 0.09 + 0.36) / 4)
    assert m.balanced_accuracy == 0.75 and m.majority_baseline == 0.5
    assert m.accuracy_ci is not None and m.accuracy_ci[0] < 0.75 < m.accuracy_ci[1]
    assert orm_metrics([0.5, 0.5], [True, False], 0.5).auroc == 0.5  # ties count half
    one = orm_metrics([0.2, 0.1], [False, False], 0.5)
    assert one.auroc is None and one.recall is None and one.precision is None
    assert one.accuracy == 1.0


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="head_tokens"):
        ORMConfig(max_length=64, head_tokens=40)
    f = tmp_path / "orm.yaml"
    f.write_text("balance: subsample\nval_fraction: 0.25\n")
    cfg = load_orm_config(f, max_steps=3)
    assert (cfg.balance, cfg.val_fraction, cfg.max_steps) == ("subsample", 0.25, 3)
    f.write_text("balanse: none\n")
    with pytest.raises(ValueError, match="balanse"):
        load_orm_config(f)


def test_one_class_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only successes"):
        train_orm(MODEL, runs["expert"], _cfg(max_steps=1), tmp_path / "o")


# ---- training, loading, labelling ---------------------------------------------------------


@pytest.mark.train
def test_orm_learns_success_on_held_out_tasks(trained: tuple[Path, ORMMeta]) -> None:
    out, meta = trained
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert len(losses) == 8 and losses[-1] < losses[0]
    val = meta.validation
    assert 0 < val.positives < val.n  # both classes held out
    assert val.accuracy > val.majority_baseline
    assert val.auroc is not None and val.auroc > 0.8
    c = meta.counts
    assert c["train_tasks"] + c["val_tasks"] == N_TASKS and c["episodes"] == 2 * N_TASKS
    assert c["train_episodes"] + c["val_episodes"] == 2 * N_TASKS
    assert read_orm_meta(out) == meta
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()


@pytest.mark.train
def test_loaded_orm_scores_like_the_trained_one_and_labels_runs(
    runs: dict[str, Path], trained: tuple[Path, ORMMeta]
) -> None:
    out, meta = trained
    orm = load_orm(out)
    eps = _episodes(runs["expert"]) + _episodes(runs["random"])
    probs = orm.score(eps, batch_size=7)
    # The folder reproduces the in-training predictions (train + validation cover all episodes).
    fit, val = meta.train_fit, meta.validation
    pooled = (fit.brier * fit.n + val.brier * val.n) / (fit.n + val.n)
    assert orm_metrics(probs, [e.success for e in eps], 0.5).brier == pytest.approx(
        pooled, abs=1e-5
    )
    assert orm.score(eps[:3], batch_size=1) == pytest.approx(probs[:3], abs=1e-5)

    summary = label_run(runs["random"], orm, threshold=0.5)
    labels = read_orm_labels(runs["random"])
    rnd = _episodes(runs["random"])
    assert summary.labelled == len(labels) == len(rnd)
    assert summary.predicted_success == sum(lab.success for lab in labels.values())
    for ep, p in zip(rnd, probs[len(eps) - len(rnd) :], strict=True):
        lab = labels[ep.episode_id]
        assert lab.p_success == pytest.approx(p, abs=1e-5) and lab.success == (p >= 0.5)
        assert lab.task_id == ep.task.task_id and lab.orm == str(out.resolve())
    assert not list(runs["random"].glob("*.tmp"))  # written atomically, nothing left over


def test_sft_builder_takes_success_from_orm_labels(runs: dict[str, Path], tmp_path: Path) -> None:
    rnd = Path(shutil.copytree(runs["random"], tmp_path / "random"))
    unlabelled = Path(shutil.copytree(runs["expert"], tmp_path / "expert"))
    (unlabelled / ORM_LABELS_FILE).unlink(missing_ok=True)
    eps = _episodes(rnd)
    # Labels that contradict the environment prove the builder reads them: call the failures successes.
    lines = [
        ORMLabel(
            episode_id=e.episode_id,
            task_id=e.task.task_id,
            p_success=0.0 if e.success else 1.0,
            success=not e.success,
            threshold=0.5,
            orm="test",
        ).model_dump_json()
        for e in eps[:-2]  # the last two stay unlabelled
    ]
    (rnd / ORM_LABELS_FILE).write_text("\n".join(lines) + "\n")
    ds, card = build_sft([rnd], reward="orm", dedup=False)
    want = {e.task.task_id for e in eps[:-2] if not e.success and e.steps}
    assert set(ds["task_id"]) == want and len(ds) == len(want)
    assert card.counts["unlabelled"] == 2 and card.parameters["reward"] == "orm"
    env_ds, env_card = build_sft([rnd], dedup=False)
    assert set(env_ds["task_id"]) == {e.task.task_id for e in eps if e.success}
    assert "unlabelled" not in env_card.counts
    with pytest.raises(FileNotFoundError, match="palaestra orm label"):
        build_sft([unlabelled], reward="orm")


@pytest.mark.train
def test_lora_orm_saves_its_head_and_reloads(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lora"
    meta = train_orm(
        MODEL,
        [runs["expert"], runs["random"]],
        _cfg(method="lora", learning_rate=5e-3, max_steps=4, balance="subsample"),
        out,
    )
    assert (out / "adapter_config.json").is_file() and meta.method == "lora"
    assert meta.counts["train_rows"] == 2 * min(
        meta.counts["train_successes"],
        meta.counts["train_episodes"] - meta.counts["train_successes"],
    )
    eps = _episodes(runs["expert"]) + _episodes(runs["random"])
    probs = load_orm(out).score(eps)
    fit, val = meta.train_fit, meta.validation
    pooled = (fit.brier * fit.n + val.brier * val.n) / (fit.n + val.n)
    # Without the trained head (PEFT's modules_to_save) the reloaded scores would differ.
    assert orm_metrics(probs, [e.success for e in eps], 0.5).brier == pytest.approx(
        pooled, abs=1e-4
    )


@pytest.mark.train
def test_cli_train_label_show(
    runs: dict[str, Path], trained: tuple[Path, ORMMeta], tmp_path: Path
) -> None:
    import typer

    from palaestra.cli.orm import orm_app, orm_train_cmd

    app = typer.Typer()
    train_app = typer.Typer()
    train_app.command("orm")(orm_train_cmd)
    app.add_typer(train_app, name="train")
    app.add_typer(orm_app, name="orm")
    cli = CliRunner()
    out = tmp_path / "cli-orm"
    r = cli.invoke(
        app,
        ["train", "orm", "--model", MODEL, "--runs", str(runs["expert"]), "--runs",
         str(runs["random"]), "--out", str(out), "--method", "full", "--max-steps", "2",
         "--max-length", "256"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "validation" in r.output and "AUROC" in r.output
    assert read_orm_meta(out).config["max_steps"] == 2

    orm_dir, _ = trained
    r = cli.invoke(app, ["orm", "label", str(runs["expert"]), "--orm", str(orm_dir)])
    assert r.exit_code == 0, r.output
    assert f"{N_TASKS} episodes labelled" in r.output
    assert len(read_orm_labels(runs["expert"])) == N_TASKS
    r = cli.invoke(app, ["orm", "show", str(orm_dir)])
    assert r.exit_code == 0 and "held-out tasks" in r.output
    r = cli.invoke(app, ["orm", "label", str(runs["expert"]), "--orm", str(tmp_path)])
    assert r.exit_code == 2 and "not an ORM folder" in r.output
