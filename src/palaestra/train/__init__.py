"""Trainers over TRL + PEFT: SFT and DPO with typed configs, LoRA merging, Model Breadcrumbs,
and an outcome reward model (ORM) that labels rollouts on tasks without a checker."""

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
from palaestra.train._orm import (
    ORM_LABELS_FILE,
    LabelSummary,
    ORMConfig,
    ORMLabel,
    ORMMeta,
    ORMMetrics,
    OutcomeRewardModel,
    label_run,
    load_orm,
    load_orm_config,
    orm_metrics,
    read_orm_labels,
    read_orm_meta,
    render_episode,
    train_orm,
)
from palaestra.train._sft import build_sft_trainer, train_sft

__all__ = [
    "ORM_LABELS_FILE",
    "DPORunConfig",
    "LabelSummary",
    "LoraSettings",
    "ORMConfig",
    "ORMLabel",
    "ORMMeta",
    "ORMMetrics",
    "OutcomeRewardModel",
    "SFTRunConfig",
    "TrainMetadata",
    "breadcrumbs_mask",
    "breadcrumbs_merge",
    "breadcrumbs_merge_models",
    "build_dpo_trainer",
    "build_sft_trainer",
    "label_run",
    "load_dpo_config",
    "load_merged",
    "load_orm",
    "load_orm_config",
    "load_sft_config",
    "merge_adapter",
    "orm_metrics",
    "read_metadata",
    "read_orm_labels",
    "read_orm_meta",
    "render_episode",
    "resolve_model_path",
    "train_dpo",
    "train_orm",
    "train_sft",
]
