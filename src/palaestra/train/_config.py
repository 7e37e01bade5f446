"""Typed configs of the trainers (one source for the Python API, the CLI and YAML files).

``SFTRunConfig`` and ``DPORunConfig`` hold what Palaestra users choose; they are
translated into TRL's ``SFTConfig``/``DPOConfig`` (and a PEFT ``LoraConfig``)
in :mod:`palaestra.train._common`. Placement follows the hardware: fp32 and
``use_cpu`` without CUDA (bf16 on CPU is several times slower), bf16 with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from palaestra._config import load_config as load_config_file


class LoraSettings(BaseModel):
    """A LoRA adapter (PEFT)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, description="Rank of the low-rank update.")
    alpha: int = Field(
        default=32, ge=1, description="Scaling numerator (update scaled by alpha/r)."
    )
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(
        default="all-linear",
        description="Modules that get an adapter: 'all-linear' or a list of module names.",
    )


class TrainRunConfig(BaseModel):
    """Settings shared by SFT and DPO."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = Field(
        default="lora", description="lora (an adapter; base frozen) or full (all weights)."
    )
    lora: LoraSettings = Field(
        default_factory=LoraSettings, description="Adapter settings (method=lora)."
    )
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field(default="cosine", description="transformers scheduler name.")
    warmup_ratio: float = Field(default=0.0, ge=0, le=1, description="Warm-up share of steps.")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the data (if max_steps<=0).")
    max_steps: int = Field(default=-1, description="Optimizer steps; overrides epochs when > 0.")
    batch_size: int = Field(default=8, ge=1, description="Sequences per device per step.")
    grad_accum: int = Field(default=1, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(default=2048, ge=16, description="Tokens per sequence (truncated).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(default=0, description="Seed of data order, dropout and initialisation.")
    logging_steps: int = Field(default=1, ge=1, description="Log the loss every N steps.")
    gradient_checkpointing: bool = Field(
        default=False, description="Trade compute for memory (large models)."
    )
    progress: bool = Field(default=True, description="Show a progress bar.")


class SFTRunConfig(TrainRunConfig):
    """Supervised fine-tuning on ``messages`` conversations, loss on trainable assistant turns."""

    assistant_only_loss: bool = Field(
        default=True,
        description="Loss only on assistant turns with train!=false (needs a chat template "
        "with generation markers).",
    )
    padding_free: bool = Field(
        default=False,
        description="Concatenate the batch without padding (needs flash attention on GPU; "
        "keep off on CPU).",
    )
    packing: bool = Field(
        default=False, description="Pack several conversations into one sequence (TRL BFD)."
    )


class DPORunConfig(TrainRunConfig):
    """Direct Preference Optimization on ``prompt``/``chosen``/``rejected`` pairs."""

    learning_rate: float = Field(default=5e-5, gt=0, description="Peak learning rate.")
    beta: float = Field(default=0.1, gt=0, description="DPO temperature (KL strength).")
    loss_type: str = Field(default="sigmoid", description="TRL DPO loss (sigmoid = the paper's).")


def load_sft_config(path: str | Path | None = None, **overrides: Any) -> SFTRunConfig:
    """An :class:`SFTRunConfig` from an optional YAML file and overrides (``None`` = not given)."""
    return load_config_file(SFTRunConfig, path, "train sft", overrides)


def load_dpo_config(path: str | Path | None = None, **overrides: Any) -> DPORunConfig:
    """A :class:`DPORunConfig` from an optional YAML file and overrides (``None`` = not given)."""
    return load_config_file(DPORunConfig, path, "train dpo", overrides)
