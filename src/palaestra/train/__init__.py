"""Trainers over TRL + PEFT: SFT and DPO with typed configs, LoRA merging and Model Breadcrumbs."""

from palaestra.train._common import TrainMetadata, read_metadata, resolve_model_path
from palaestra.train._config import (
    DPORunConfig,
    LoraSettings,
    SFTRunConfig,
    load_dpo_config,
    load_sft_config,
)
from palaestra.train._dpo import build_dpo_trainer, train_dpo
from palaestra.train._merge import (
    breadcrumbs_mask,
    breadcrumbs_merge,
    breadcrumbs_merge_models,
    load_merged,
    merge_adapter,
)
from palaestra.train._sft import build_sft_trainer, train_sft

__all__ = [
    "DPORunConfig",
    "LoraSettings",
    "SFTRunConfig",
    "TrainMetadata",
    "breadcrumbs_mask",
    "breadcrumbs_merge",
    "breadcrumbs_merge_models",
    "build_dpo_trainer",
    "build_sft_trainer",
    "load_dpo_config",
    "load_merged",
    "load_sft_config",
    "merge_adapter",
    "read_metadata",
    "resolve_model_path",
    "train_dpo",
    "train_sft",
]
