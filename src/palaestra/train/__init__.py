"""Trainers over TRL + PEFT: SFT, DPO and online RL (GRPO/RLOO) with typed configs, LoRA merging, Model Breadcrumbs,
and an outcome reward model (ORM) that labels rollouts on tasks without a checker.

The run configs (``SFTRunConfig``, ``DPORunConfig``, ``RLRunConfig``, ``LoraSettings``) import without
torch, so a command line can build its flags from them; every name that needs torch,
transformers or TRL is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Re-exported for one release (0.1): the ORM's metrics moved to palaestra.eval and its label
# schema to palaestra.trajectory (neither needs torch); import them from there.
from palaestra.eval import ORMMetrics, orm_metrics
from palaestra.train._config import (
    DPORunConfig,
    LoraSettings,
    SFTRunConfig,
    load_dpo_config,
    load_sft_config,
)
from palaestra.train._rl_config import RLRunConfig, load_rl_config
from palaestra.trajectory import ORM_LABELS_FILE, ORMLabel, read_orm_labels  # re-export, as ↑

if TYPE_CHECKING:
    from palaestra.train._common import TrainMetadata, read_metadata, resolve_model_path
    from palaestra.train._dpo import build_dpo_trainer, train_dpo
    from palaestra.train._merge import (
        breadcrumbs_mask,
        breadcrumbs_merge,
        breadcrumbs_merge_models,
        load_merged,
        merge_adapter,
    )
    from palaestra.train._orm_data import (
        ORMConfig,
        ORMMeta,
        load_orm_config,
        read_orm_meta,
        render_episode,
    )
    from palaestra.train._orm_infer import LabelSummary, OutcomeRewardModel, label_run, load_orm
    from palaestra.train._orm_trainer import train_orm
    from palaestra.train._rl import EngineRollout, build_rl_trainer, train_rl
    from palaestra.train._rl_episodes import EpisodeTokens, RecordingAgent, Turn, episode_tokens
    from palaestra.train._sft import build_sft_trainer, train_sft

# name -> the module that defines it; imported on first use (they need torch).
_LAZY = {
    **dict.fromkeys(("TrainMetadata", "read_metadata", "resolve_model_path"), "_common"),
    **dict.fromkeys(("build_dpo_trainer", "train_dpo"), "_dpo"),
    **dict.fromkeys(
        (
            "breadcrumbs_mask",
            "breadcrumbs_merge",
            "breadcrumbs_merge_models",
            "load_merged",
            "merge_adapter",
        ),
        "_merge",
    ),
    **dict.fromkeys(
        ("ORMConfig", "ORMMeta", "load_orm_config", "read_orm_meta", "render_episode"),
        "_orm_data",
    ),
    **dict.fromkeys(("LabelSummary", "OutcomeRewardModel", "label_run", "load_orm"), "_orm_infer"),
    "train_orm": "_orm_trainer",
    **dict.fromkeys(("EngineRollout", "build_rl_trainer", "train_rl"), "_rl"),
    **dict.fromkeys(("EpisodeTokens", "RecordingAgent", "Turn", "episode_tokens"), "_rl_episodes"),
    **dict.fromkeys(("build_sft_trainer", "train_sft"), "_sft"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ORM_LABELS_FILE",
    "DPORunConfig",
    "EngineRollout",
    "EpisodeTokens",
    "LabelSummary",
    "LoraSettings",
    "ORMConfig",
    "ORMLabel",
    "ORMMeta",
    "ORMMetrics",
    "OutcomeRewardModel",
    "RLRunConfig",
    "RecordingAgent",
    "SFTRunConfig",
    "TrainMetadata",
    "Turn",
    "breadcrumbs_mask",
    "breadcrumbs_merge",
    "breadcrumbs_merge_models",
    "build_dpo_trainer",
    "build_rl_trainer",
    "build_sft_trainer",
    "episode_tokens",
    "label_run",
    "load_dpo_config",
    "load_merged",
    "load_orm",
    "load_orm_config",
    "load_rl_config",
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
    "train_rl",
    "train_sft",
]
