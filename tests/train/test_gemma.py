"""Integration tier: a few LoRA steps on Gemma-3-270M (converted once into the user cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytest.importorskip("gguf")


@pytest.mark.integration
@pytest.mark.train
def test_gemma_lora_steps(tmp_path: Path) -> None:
    from datasets import Dataset

    from palaestra.model import ChatMessage, get_model
    from palaestra.train import LoraSettings, SFTRunConfig, train_sft

    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Say the number {i}.", "train": None},
                {"role": "assistant", "content": f"Action: say[{i}]", "train": True},
            ]
        }
        for i in range(4)
    ]
    cfg = SFTRunConfig(
        learning_rate=1e-3,
        max_steps=3,
        batch_size=2,
        max_length=64,
        lora=LoraSettings(r=4),
        progress=False,
    )
    meta = train_sft("gemma-270m", Dataset.from_list(rows), cfg, tmp_path / "out")
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    assert len(losses) == 3 and losses[-1] < losses[0]
    model: Any = get_model(meta.load_id, eos_tokens=["<end_of_turn>"])
    assert model.generate([[ChatMessage(role="user", content="Say the number 1.")]])
