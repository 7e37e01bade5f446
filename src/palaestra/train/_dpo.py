"""``train_dpo``: Direct Preference Optimization (Rafailov et al., 2023) over TRL's ``DPOTrainer``.

Pairs are TRL's conversational preference format: ``prompt`` (a list of
messages), ``chosen`` and ``rejected`` (each one assistant message), as the
``palaestra data pairs`` builder writes them (step-level pairs as in Agent Q,
trajectory-level ones as in AgentGym). With LoRA the frozen base is the
reference model (the adapter is switched off to score it), so no second copy
of the weights is held; full fine-tuning keeps a frozen copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palaestra.train._common import (
    TrainMetadata,
    fit_and_save,
    load_base,
    load_dataset_arg,
    lora_config,
    resolve_model_path,
    trainer_args,
)
from palaestra.train._config import DPORunConfig

_COLUMNS = ("prompt", "chosen", "rejected")


def build_dpo_trainer(
    model_id: str | Path, dataset: Any, config: DPORunConfig, out_dir: str | Path
) -> tuple[Any, Any, Path]:
    """The configured ``DPOTrainer`` (not yet trained), its tokenizer and the base folder."""
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    base_path = resolve_model_path(model_id)
    model, tokenizer = load_base(base_path)
    data = load_dataset_arg(dataset)
    missing = [c for c in _COLUMNS if c not in data.column_names]
    if missing:
        raise ValueError(f"DPO data needs columns {list(_COLUMNS)}; missing {missing}")
    data = data.select_columns(list(_COLUMNS))
    args = DPOConfig(
        **trainer_args(config, Path(out_dir)),
        beta=config.beta,
        loss_type=[config.loss_type],
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora_config(config),
    )
    return trainer, tokenizer, base_path


def train_dpo(
    model_id: str | Path,
    dataset: Any,
    config: DPORunConfig | None = None,
    out_dir: str | Path = "dpo-out",
) -> TrainMetadata:
    """Preference-tune ``model_id`` (tiny, gemma-270m, hf/<dir>) on ``dataset`` into ``out_dir``.

    To continue from an SFT adapter, merge it first (``palaestra merge``) and
    pass the merged folder as ``hf/<dir>``.
    """
    return fit_and_save(
        "dpo", build_dpo_trainer, model_id, dataset, config or DPORunConfig(), out_dir
    )
