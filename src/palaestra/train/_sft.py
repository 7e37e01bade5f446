"""``train_sft``: supervised fine-tuning of agent trajectories over TRL's ``SFTTrainer``.

Follows AgentTuning (Zeng et al., 2023): multi-turn conversations with the
loss only on the agent's own turns. The data is a ``messages`` column of
``{role, content, train}`` dicts; with ``assistant_only_loss`` TRL masks
everything outside the chat template's ``{% generation %}`` blocks, and our
templates render ``train: false`` assistant turns outside them (in context,
no loss: AgentRefine's masked mistakes).

The model's template is checked on token masks first (``sft_chat_template``);
where Palaestra's family template has to stand in, it is used only to
tokenize the data: the saved tokenizer keeps the model's own template.
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
    sft_chat_template,
    trainer_args,
)
from palaestra.train._config import SFTRunConfig


def build_sft_trainer(
    model_id: str | Path, dataset: Any, config: SFTRunConfig, out_dir: str | Path
) -> tuple[Any, Any, Path]:
    """The configured ``SFTTrainer`` (not yet trained), its tokenizer and the base folder."""
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    base_path = resolve_model_path(model_id)
    model, tokenizer = load_base(base_path)
    data = load_dataset_arg(dataset)
    if "messages" not in data.column_names:
        raise ValueError(f"SFT data needs a 'messages' column; it has {data.column_names}")
    # Extra columns (task ids, outcomes) would confuse TRL's collator.
    data = data.select_columns(["messages"])
    args = SFTConfig(
        **trainer_args(config, Path(out_dir)),
        assistant_only_loss=config.assistant_only_loss,
        packing=config.packing,
        padding_free=config.padding_free,
    )
    template = sft_chat_template(tokenizer, data, assistant_only_loss=config.assistant_only_loss)
    original = tokenizer.chat_template
    if template is not None:
        tokenizer.chat_template = template
    try:  # SFTTrainer tokenizes the whole dataset here
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )
    finally:
        tokenizer.chat_template = original
    return trainer, tokenizer, base_path


def train_sft(
    model_id: str | Path,
    dataset: Any,
    config: SFTRunConfig | None = None,
    out_dir: str | Path = "sft-out",
) -> TrainMetadata:
    """Fine-tune ``model_id`` (tiny, gemma-270m, hf/<dir>) on ``dataset`` into ``out_dir``.

    ``dataset`` is a ``datasets.Dataset``, a ``save_to_disk`` folder (its
    dataset card, if any, is copied into the metadata) or a JSONL/Parquet file.
    """
    return fit_and_save(
        "sft", build_sft_trainer, model_id, dataset, config or SFTRunConfig(), out_dir
    )
