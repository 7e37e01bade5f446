"""Trainers: SFT/DPO on the tiny model, output folders loadable by our model layer and plain PEFT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")

from _train_helpers import ParamChange, every_param_moved  # noqa: E402

from palaestra.model import get_model  # noqa: E402
from palaestra.train import (  # noqa: E402
    DPORunConfig,
    SFTRunConfig,
    load_sft_config,
    read_metadata,
    resolve_model_path,
    train_dpo,
    train_sft,
)

MODEL = "tiny/micro"


def _conversations(n: int) -> Any:
    """A toy agent format: the answer is the word after 'say'; the first reply is a masked mistake."""
    words = ["apple", "river", "stone", "cloud", "green", "table", "light", "north"]
    rows: list[dict[str, Any]] = []
    for i in range(n):
        w = words[i % len(words)]
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "Reply with the action.", "train": None},
                    {"role": "user", "content": f"say {w}", "train": None},
                    {"role": "assistant", "content": "Action: look", "train": False},
                    {"role": "user", "content": "Nothing happens.", "train": None},
                    {"role": "assistant", "content": f"Action: {w}", "train": True},
                ],
                "task_id": f"t{i}",
            }
        )
    return datasets.Dataset.from_list(rows)


@pytest.fixture(autouse=True)
def _threads() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_config_yaml_and_validation(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("method: full\nlearning_rate: 0.001\nlora: {r: 4}\n")
    cfg = load_sft_config(f, max_steps=3)
    assert (cfg.method, cfg.learning_rate, cfg.lora.r, cfg.max_steps) == ("full", 1e-3, 4, 3)
    assert cfg.lora.target_modules == "all-linear"
    f.write_text("lerning_rate: 1\n")
    with pytest.raises(ValueError, match="lerning_rate"):
        load_sft_config(f)


def test_resolve_model_path(tmp_path: Path) -> None:
    assert (resolve_model_path(MODEL) / "config.json").is_file()
    assert resolve_model_path(f"hf/{resolve_model_path(MODEL)}") == resolve_model_path(MODEL)
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        resolve_model_path(f"hf/{tmp_path}")


@pytest.mark.train
def test_sft_lora_trains_and_loads(tmp_path: Path, param_changes: list[ParamChange]) -> None:
    data = _conversations(16)
    data.save_to_disk(str(tmp_path / "data"))
    (tmp_path / "data" / "dataset_card.json").write_text(json.dumps({"builder": "test"}))
    cfg = SFTRunConfig(
        learning_rate=5e-3, max_steps=6, batch_size=8, max_length=128, progress=False
    )
    out = tmp_path / "out"
    base = resolve_model_path(MODEL)
    before = {k: v.clone() for k, v in get_model(f"hf/{base}").model.state_dict().items()}  # pyright: ignore[reportAttributeAccessIssue]
    meta = train_sft(MODEL, tmp_path / "data", cfg, out)

    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]
    every_param_moved(param_changes)  # every LoRA A and B matrix
    assert meta.dataset_card == {"builder": "test"} and meta.dataset_rows == 16
    assert (out / "adapter_config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert read_metadata(out).load_id == f"hf/{base.resolve()}+{out.resolve()}"
    assert 0 < meta.trainable_params < sum(v.numel() for v in before.values())

    # Our model layer: the merged weights differ from the base.
    merged: Any = get_model(meta.load_id)
    changed = [k for k, v in merged.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    # Plain PEFT loads the folder as well, with the same weights once merged.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(out))
    plain = peft.merge_and_unload().state_dict()  # pyright: ignore[reportCallIssue, reportUnknownMemberType, reportUnknownVariableType]
    for k in changed:
        assert torch.allclose(plain[k], merged.model.state_dict()[k], atol=1e-6)


def test_sft_masks_untrained_turns() -> None:
    from palaestra.train import build_sft_trainer

    cfg = SFTRunConfig(max_steps=1, batch_size=2, max_length=128, progress=False)
    trainer, tok, _ = build_sft_trainer(MODEL, _conversations(2), cfg, "unused-out")
    row = trainer.train_dataset[0]
    labelled = tok.decode([t for t in row["labels"] if t != -100])
    assert labelled == "Action: apple<|im_end|>"  # the masked mistake and the prompt carry no loss


def _pairs(n: int) -> Any:
    words = ["apple", "river", "stone", "cloud"]
    return datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": f"say {words[i % 4]}"}],
                "chosen": [{"role": "assistant", "content": f"Action: {words[i % 4]}"}],
                "rejected": [{"role": "assistant", "content": "Action: look"}],
                "kind": "step",
            }
            for i in range(n)
        ]
    )


@pytest.mark.train
def test_dpo_margins_and_accuracy_rise(tmp_path: Path, param_changes: list[ParamChange]) -> None:
    cfg = DPORunConfig(learning_rate=5e-3, max_steps=8, batch_size=8, max_length=64, progress=False)
    meta = train_dpo(MODEL, _pairs(16), cfg, tmp_path / "dpo")
    logs = [h for h in meta.log_history if "rewards/margins" in h]
    assert len(logs) == 8
    first, last = logs[0], logs[-1]
    assert last["rewards/margins"] > first["rewards/margins"]
    assert last["rewards/margins"] > 0
    assert last["rewards/accuracies"] >= first["rewards/accuracies"]
    assert last["rewards/accuracies"] == 1.0
    every_param_moved(param_changes)
    assert (tmp_path / "dpo" / "adapter_config.json").is_file()


@pytest.mark.train
def test_cli_train_and_merge(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from palaestra.cli.train import merge_cmd, train_app

    app = typer.Typer()
    app.add_typer(train_app, name="train")
    app.command("merge")(merge_cmd)
    _conversations(8).save_to_disk(str(tmp_path / "data"))
    runner = CliRunner()
    out = tmp_path / "sft"
    args = ["train", "sft", "--model", MODEL, "--data", str(tmp_path / "data"), "--out", str(out)]
    res = runner.invoke(app, [*args, "--max-steps", "2", "--batch-size", "4", "--lr", "0.01"])
    assert res.exit_code == 0, res.output
    assert read_metadata(out).config["max_steps"] == 2
    res = runner.invoke(app, ["merge", str(out), "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    merged: Any = get_model(f"hf/{tmp_path / 'merged'}")
    adapted: Any = get_model(read_metadata(out).load_id)
    for k, v in adapted.model.state_dict().items():
        assert torch.allclose(v, merged.model.state_dict()[k], atol=1e-6)
    res = runner.invoke(
        app, ["train", "sft", "--model", MODEL, "--data", str(tmp_path / "nope"), "--out", str(out)]
    )
    assert res.exit_code != 0 and "nope" in res.output


@pytest.mark.train
def test_dpo_on_pairs_built_from_a_store(tmp_path: Path, param_changes: list[ParamChange]) -> None:
    """Acceptance: pairs from `palaestra data pairs` (expert vs random on the same tasks)."""
    from palaestra.data import build_pairs
    from palaestra.rollout import load_config, rollout

    for agent in ("expert", "random"):
        rollout(
            load_config(None, env="toolqa-v1", agent=agent, n=8, split="train", difficulty="easy"),
            tmp_path / agent,
            progress=False,
        )
    pairs, card = build_pairs([tmp_path / "expert", tmp_path / "random"], kinds=("trajectory",))
    assert len(pairs) >= 8 and card.counts
    cfg = DPORunConfig(
        learning_rate=5e-3, max_steps=6, batch_size=4, max_length=1024, progress=False
    )
    meta = train_dpo(MODEL, pairs, cfg, tmp_path / "dpo")
    logs = [h for h in meta.log_history if "rewards/margins" in h]
    assert len(logs) == 6
    assert logs[-1]["rewards/margins"] > logs[0]["rewards/margins"]
    assert logs[-1]["rewards/margins"] > 0
    assert logs[-1]["rewards/accuracies"] >= logs[0]["rewards/accuracies"]
    every_param_moved(param_changes)
