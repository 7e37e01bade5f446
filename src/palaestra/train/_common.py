"""What SFT and DPO share: model ids to folders, TRL arguments, the output folder and its metadata.

An output folder holds either a PEFT adapter (``adapter_config.json``) or a
full model, always with the tokenizer and ``palaestra.json``
(:class:`TrainMetadata`: base model, dataset card, config, metrics). An
adapter folder loads as ``get_model("hf/<base>+<folder>")`` and with plain
``PeftModel.from_pretrained``; a full-model folder as ``hf/<folder>``.

Loss masks are checked before SFT (:func:`sft_chat_template`): a ``train:
false`` assistant turn (AgentRefine's masked mistakes) gets loss under any
template that ignores the flag — the model's own, or the training template
TRL swaps in for ``assistant_only_loss`` — so the template is probed on
tokens first and, where it cannot express the flag, Palaestra's training
template of the model's family is used, or training refuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from palaestra.model import masking_problem, rendering_problem, training_template_for
from palaestra.train._config import TrainRunConfig

METADATA_FILE = "palaestra.json"
#: File names a data builder may leave next to a saved dataset (its card).
CARD_FILES = ("dataset_card.json", "card.json")


class TrainMetadata(BaseModel):
    """``palaestra.json`` of a training output folder."""

    kind: Literal["sft", "dpo", "rl"] = Field(description="Training method.")
    base_model: str = Field(description="The model id as given (tiny, gemma-270m, hf/...).")
    base_path: str = Field(description="The base checkpoint folder the weights came from.")
    method: Literal["lora", "full"] = Field(description="Adapter or full weights.")
    load_id: str = Field(description="The id that loads the result with get_model().")
    dataset_card: dict[str, Any] | None = Field(default=None, description="The data's card.")
    dataset_rows: int = Field(description="Training rows.")
    config: dict[str, Any] = Field(description="The run config.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Final train metrics.")
    log_history: list[dict[str, Any]] = Field(
        default_factory=list[dict[str, Any]], description="Trainer log entries (loss per step)."
    )
    trainable_params: int = Field(description="Parameters updated by training.")
    wall_seconds: float = Field(description="Training time.")


def resolve_model_path(model: str | Path) -> Path:
    """A local checkpoint folder for ``tiny``, ``tiny/<preset>``, ``gemma-270m``, ``hf/<dir>`` or a dir."""
    name = str(model)
    if name == "tiny" or name.startswith("tiny/"):
        from palaestra.data import tiny_path

        return tiny_path(name.partition("/")[2])
    if name == "gemma-270m":
        from palaestra.model import gemma_path

        return gemma_path()
    path = Path(name.removeprefix("hf/")).expanduser()
    if "+" in path.name:
        raise ValueError(f"{name!r} names an adapter; merge it first (palaestra merge)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model {name!r}: {path} is not a checkpoint folder (no config.json); pass tiny, "
            "gemma-270m, hf/<dir> or a folder"
        )
    return path


def on_cuda() -> bool:
    return torch.cuda.is_available()


def load_base(path: Path) -> tuple[PreTrainedModel, Any]:
    """The base model in the dtype its device trains fast in, and its tokenizer."""
    dtype = torch.bfloat16 if on_cuda() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def count_masked_turns(data: Any) -> int:
    """Assistant messages marked ``train: false`` in a dataset's ``messages`` column."""
    return sum(
        1
        for conv in data["messages"]
        for m in conv
        if m.get("role") == "assistant" and m.get("train") is False
    )


def sft_chat_template(tokenizer: Any, data: Any, *, assistant_only_loss: bool) -> str | None:
    """The chat template SFT must tokenize ``data`` with; None: the tokenizer's (or TRL's) is right.

    Checked on token masks (:func:`~palaestra.model._templates.masking_problem`): the
    template TRL would use — the tokenizer's if it has ``{% generation %}`` markers, else
    TRL's training version of it — must give loss to exactly the trainable assistant turns,
    each with its end-of-turn token. If it does not, Palaestra's training template for the
    model's family, when it renders exactly what the model's own template renders. Otherwise
    a ``ValueError`` names the template and the fix.
    """
    masked = count_masked_turns(data)
    if not assistant_only_loss:
        if masked:
            raise ValueError(
                f"the data keeps {masked} assistant turn(s) out of the loss (train: false), but "
                "assistant_only_loss is off, so they would be trained on: turn it on"
            )
        return None
    original = tokenizer.chat_template
    if isinstance(original, dict):
        original = original.get("default")  # pyright: ignore[reportUnknownMemberType]
    if not isinstance(original, str) or not original:
        raise ValueError(
            "the tokenizer has no chat template: give it one with {% generation %} markers "
            "(see palaestra.model._templates) before training"
        )
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    try:
        trl_choice = (
            original if has_generation_markers(original) else get_training_chat_template(tokenizer)
        )
    except ValueError:  # TRL has no training version of this template
        trl_choice = None
    if trl_choice is None:
        problem = "has no {% generation %} markers, and TRL has no training version of it"
    else:
        problem = masking_problem(tokenizer, trl_choice, masked_turn=masked > 0)
        if problem is None:
            return None
        if trl_choice != original:
            problem = f"(as TRL's training version) {problem}"
    found = training_template_for(original)
    if found is not None:
        name, ours = found
        why = masking_problem(tokenizer, ours) or rendering_problem(tokenizer, original, ours)
        if why is None:
            return ours
        problem += f"; Palaestra's {name!r} training template does not fit this model: it {why}"
    head = " ".join(original.split())[:120]
    raise ValueError(
        f"cannot train with per-turn loss masks: the model's chat template ({head!r}...) "
        f"{problem}. Assistant turns marked train: false (AgentRefine's masked mistakes) "
        "would get loss, or turns would not learn to stop. Fix: set the tokenizer's "
        "chat_template to one that wraps each assistant turn whose `train` is not false, end-"
        "of-turn token included, in {% generation %} ... {% endgeneration %} (Palaestra's "
        "family templates are in palaestra.model._templates.TEMPLATES), and save it with the "
        "model."
    )


def trainer_args(config: TrainRunConfig, out_dir: Path) -> dict[str, Any]:
    """Keyword arguments common to TRL's ``SFTConfig`` and ``DPOConfig``."""
    cuda = on_cuda()
    args: dict[str, Any] = {
        "output_dir": str(out_dir / "checkpoints"),
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "max_length": config.max_length,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_steps": config.logging_steps,
        "disable_tqdm": not config.progress,
        "save_strategy": "no",
        "report_to": [],
        "bf16": cuda,
        "use_cpu": not cuda,
        "dataloader_num_workers": 0,
    }
    # Always given: TRL's configs turn checkpointing on by default, which recomputes every
    # activation in the backward pass; transformers 5's name (the old one draws a warning).
    args["activation_checkpointing"] = config.gradient_checkpointing
    return args


def lora_config(config: TrainRunConfig) -> Any:
    """PEFT ``LoraConfig`` for ``config.method == 'lora'``, else ``None``."""
    if config.method != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def load_card(dataset: Any) -> dict[str, Any] | None:
    """The dataset card saved next to a dataset folder, if there is one."""
    if not isinstance(dataset, str | Path):
        return None
    for name in CARD_FILES:
        f = Path(dataset) / name
        if f.is_file():
            data = json.loads(f.read_text())
            return data if isinstance(data, dict) else {"card": data}
    return None


def load_dataset_arg(dataset: Any) -> Any:
    """A ``datasets.Dataset`` from a Dataset, a ``save_to_disk`` folder, or a JSONL/Parquet file."""
    from datasets import Dataset, load_dataset, load_from_disk

    if isinstance(dataset, Dataset):
        return dataset
    path = Path(dataset)
    if path.is_dir():
        loaded = load_from_disk(str(path))
        if not isinstance(loaded, Dataset):
            loaded = loaded["train"]
        return loaded
    if path.suffix in (".jsonl", ".json"):
        return load_dataset("json", data_files=str(path), split="train")
    if path.suffix == ".parquet":
        return load_dataset("parquet", data_files=str(path), split="train")
    raise FileNotFoundError(f"dataset {dataset!r} is not a dataset folder, .jsonl or .parquet file")


def save_output(
    trainer: Any,
    tokenizer: Any,
    out_dir: Path,
    *,
    kind: Literal["sft", "dpo", "rl"],
    model_id: str | Path,
    base_path: Path,
    config: TrainRunConfig,
    card: Mapping[str, Any] | None,
    rows: int,
    metrics: Mapping[str, Any],
    trainable: int,
    started: float,
) -> TrainMetadata:
    """Write the adapter (or full model), tokenizer and ``palaestra.json`` to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    if on_cuda() and config.method == "full":
        model = model.to(torch.float32)  # a CPU user of the folder should not get bf16
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    load_id = (
        f"hf/{base_path.resolve()}+{out_dir.resolve()}"
        if config.method == "lora"
        else f"hf/{out_dir.resolve()}"
    )
    meta = TrainMetadata(
        kind=kind,
        base_model=str(model_id),
        base_path=str(base_path.resolve()),
        method=config.method,
        load_id=load_id,
        dataset_card=dict(card) if card is not None else None,
        dataset_rows=rows,
        config=config.model_dump(mode="json"),
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        log_history=list(trainer.state.log_history),
        trainable_params=trainable,
        wall_seconds=time.perf_counter() - started,
    )
    (out_dir / METADATA_FILE).write_text(meta.model_dump_json(indent=2))
    return meta


def fit_and_save(
    kind: Literal["sft", "dpo", "rl"],
    build: Callable[[str | Path, Any, Any, Path], tuple[Any, Any, Path]],
    model_id: str | Path,
    dataset: Any,
    config: TrainRunConfig,
    out_dir: str | Path,
) -> TrainMetadata:
    """Build a trainer with ``build``, train it, and write the output folder (SFT and DPO alike)."""
    started = time.perf_counter()
    out = Path(out_dir)
    trainer, tokenizer, base_path = build(model_id, dataset, config, out)
    result = trainer.train()
    return save_output(
        trainer,
        tokenizer,
        out,
        kind=kind,
        model_id=model_id,
        base_path=base_path,
        config=config,
        card=load_card(dataset),
        rows=len(trainer.train_dataset),
        metrics=result.metrics,
        trainable=count_trainable(trainer.model),
        started=started,
    )


def read_metadata(out_dir: str | Path) -> TrainMetadata:
    """The :class:`TrainMetadata` of a training output folder."""
    return TrainMetadata.model_validate_json((Path(out_dir) / METADATA_FILE).read_text())


def count_trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
