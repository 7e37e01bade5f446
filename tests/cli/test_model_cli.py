"""``palaestra model build-tiny``: flags derived from ``PretrainConfig``, old spellings, and the
settings that need ``--pretrain``. The builders are replaced by fakes: no model is built here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import palaestra.data
from palaestra.cli import app
from palaestra.model import PretrainCard, PretrainConfig

runner = CliRunner()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """What the command asked the (fake) builders for: a ``PretrainConfig`` or ``(preset, seed)``."""
    calls: list[object] = []

    def pretrain_tiny(config: PretrainConfig, out: str | Path) -> Path:
        calls.append(config)
        folder = Path(out)
        folder.mkdir(parents=True)
        card = PretrainCard(
            fingerprint=config.fingerprint(),
            config=config,
            tokenizer_from="fake",
            corpus_episodes={"house-v1": 3},
            corpus_tokens=1000,
            blocks=2,
            tokens_seen=2048,
            steps=config.max_steps,
            final_loss=1.5,
            loss_curve=[(1, 2.0), (2, 1.5)],
            wall_seconds=6.0,
            steps_per_second=0.5,
            tokens_per_second=340.0,
        )
        (folder / "pretrain_card.json").write_text(card.model_dump_json())
        return folder

    def tiny_path(name: str = "", *, seed: int = 0) -> Path:
        calls.append((name, seed))
        return tmp_path / "cache" / f"tiny-{name}-{seed}"

    # In the module's namespace: getattr would import the real ones (and torch) first.
    monkeypatch.setitem(vars(palaestra.data), "pretrain_tiny", pretrain_tiny)
    monkeypatch.setitem(vars(palaestra.data), "tiny_path", tiny_path)
    return calls


def test_flags_become_the_pretraining_config(built: list[object], tmp_path: Path) -> None:
    out = tmp_path / "pt"
    args = ["model", "build-tiny", "--pretrain", "--out", str(out), "--preset", "micro"]
    args += ["--max-steps", "7", "--batch-size", "2", "--seq-len", "64", "--synthetic", "0.5"]
    args += ["--init-from", "prev", "--family-weights", "{house-v1: 1.0}", "--warmup-ratio", "0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert built == [
        PretrainConfig(
            preset="micro",
            max_steps=7,
            batch_size=2,
            seq_len=64,
            synthetic=0.5,
            init_from="prev",
            family_weights={"house-v1": 1.0},
            warmup_ratio=0.0,
        )
    ]
    assert "pretrained tiny" in res.output and f"load it as hf/{out}" in res.output


def test_steps_is_the_old_hidden_spelling_of_max_steps(built: list[object], tmp_path: Path) -> None:
    res = runner.invoke(app, ["model", "build-tiny", "--pretrain", "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["model", "build-tiny", "--pretrain", "-o", str(tmp_path / "b"), "--steps", "9"]
    )
    assert res.exit_code == 0, res.output
    args = ["model", "build-tiny", "--pretrain", "-o", str(tmp_path / "c")]
    res = runner.invoke(app, [*args, "--steps", "9", "--max-steps", "11"])  # the new name wins
    assert res.exit_code == 0, res.output
    assert [c.max_steps for c in built if isinstance(c, PretrainConfig)] == [
        PretrainConfig().max_steps,
        9,
        11,
    ]
    help_text = runner.invoke(app, ["model", "build-tiny", "--help"]).output
    assert "--max-steps" in help_text and "--steps " not in help_text


def test_a_config_file_under_the_flags(built: list[object], tmp_path: Path) -> None:
    cfg = tmp_path / "pt.yaml"
    cfg.write_text("max_steps: 5\nseed: 3\nnoise: 0.1\n")
    args = ["model", "build-tiny", "--pretrain", "-o", str(tmp_path / "pt"), "-c", str(cfg)]
    res = runner.invoke(app, [*args, "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert built == [PretrainConfig(max_steps=5, seed=4, noise=0.1)]


def test_without_pretrain_only_preset_and_seed_apply(built: list[object]) -> None:
    res = runner.invoke(app, ["model", "build-tiny", "--preset", "micro", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert built == [("micro", 2)] and "tiny/micro:" in res.output
    res = runner.invoke(app, ["model", "build-tiny", "--steps", "5", "--noise", "0.3"])
    assert res.exit_code == 2
    assert "--max-steps, --noise only apply with --pretrain" in res.output
    assert built == [("micro", 2)]  # nothing built


def test_invalid_values_name_the_field(built: list[object], tmp_path: Path) -> None:
    args = ["model", "build-tiny", "--pretrain", "-o", str(tmp_path / "pt"), "--seq-len", "8"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert "seq_len" in res.output and "greater than 16" in res.output
    assert built == []
