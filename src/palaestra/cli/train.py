"""``palaestra train sft|dpo`` and ``palaestra merge``: fine-tune over TRL + PEFT, fold or merge results."""

from __future__ import annotations

from pathlib import Path

import typer

from palaestra.cli._common import console, fail, import_hint

train_app = typer.Typer(
    help="Fine-tune a model on a built dataset (SFT or DPO).", no_args_is_help=True
)

_MODEL_HELP = "Base model: tiny, gemma-270m, hf/DIR or a checkpoint folder."
_DATA_HELP = "Dataset folder (palaestra data ...), or a .jsonl/.parquet file."


def _check_data(data: Path) -> None:
    """Refuse a missing dataset before the model is loaded (seconds to minutes)."""
    if not data.exists():
        fail(f"--data {data} does not exist: pass a folder from `palaestra data ...`, or a file")
    if data.is_file() and data.suffix not in (".jsonl", ".json", ".parquet"):
        fail(f"--data {data} is not a dataset folder, .jsonl or .parquet file")


def _overrides(
    method: str | None,
    learning_rate: float | None,
    epochs: float | None,
    max_steps: int | None,
    batch_size: int | None,
    grad_accum: int | None,
    max_length: int | None,
    seed: int | None,
) -> dict[str, object]:
    return {
        "method": method,
        "learning_rate": learning_rate,
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "max_length": max_length,
        "seed": seed,
    }


@train_app.command("sft")
def sft_cmd(
    model: str = typer.Option(..., "--model", "-m", help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help=_DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (adapter or model)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of settings."),
    method: str | None = typer.Option(None, help="lora or full (default: lora)."),
    learning_rate: float | None = typer.Option(None, "--lr", help="Peak learning rate."),
    epochs: float | None = typer.Option(None, help="Passes over the data (default: 1)."),
    max_steps: int | None = typer.Option(None, help="Optimizer steps (overrides epochs)."),
    batch_size: int | None = typer.Option(None, help="Sequences per device per step."),
    grad_accum: int | None = typer.Option(None, help="Gradient accumulation steps."),
    max_length: int | None = typer.Option(None, help="Tokens per sequence."),
    seed: int | None = typer.Option(None, help="Seed (default: 0)."),
) -> None:
    """Supervised fine-tuning with loss on the agent's trainable turns.

    Settings come from flags, else from --config, else the defaults.
    """
    try:
        from palaestra.train import load_sft_config, train_sft

        cfg = load_sft_config(
            config,
            **_overrides(
                method, learning_rate, epochs, max_steps, batch_size, grad_accum, max_length, seed
            ),
        )
        _check_data(data)
        meta = train_sft(model, data, cfg, out)
    except ImportError as e:
        fail(import_hint(e, "palaestra train sft"))
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    console.print(
        f"SFT done in {meta.wall_seconds:.0f}s, loss {meta.metrics.get('train_loss', float('nan')):.3f} → {out}\nload it as: {meta.load_id}"
    )


@train_app.command("dpo")
def dpo_cmd(
    model: str = typer.Option(..., "--model", "-m", help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help=_DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (adapter or model)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of settings."),
    method: str | None = typer.Option(None, help="lora or full (default: lora)."),
    learning_rate: float | None = typer.Option(None, "--lr", help="Peak learning rate."),
    epochs: float | None = typer.Option(None, help="Passes over the data (default: 1)."),
    max_steps: int | None = typer.Option(None, help="Optimizer steps (overrides epochs)."),
    batch_size: int | None = typer.Option(None, help="Pairs per device per step."),
    grad_accum: int | None = typer.Option(None, help="Gradient accumulation steps."),
    max_length: int | None = typer.Option(None, help="Tokens per prompt + reply."),
    seed: int | None = typer.Option(None, help="Seed (default: 0)."),
    beta: float | None = typer.Option(None, help="DPO beta (default: 0.1)."),
) -> None:
    """Direct Preference Optimization on prompt/chosen/rejected pairs.

    Settings come from flags, else from --config, else the defaults.
    """
    try:
        from palaestra.train import load_dpo_config, train_dpo

        cfg = load_dpo_config(
            config,
            beta=beta,
            **_overrides(
                method, learning_rate, epochs, max_steps, batch_size, grad_accum, max_length, seed
            ),
        )
        _check_data(data)
        meta = train_dpo(model, data, cfg, out)
    except ImportError as e:
        fail(import_hint(e, "palaestra train dpo"))
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    console.print(f"DPO done in {meta.wall_seconds:.0f}s → {out}\nload it as: {meta.load_id}")


def merge_cmd(
    folders: list[Path] = typer.Argument(..., help="An adapter folder, or several fine-tunes."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the merged model."),
    base: str | None = typer.Option(
        None, help="Base model (default: the adapter's own); needed with --breadcrumbs."
    ),
    breadcrumbs: bool = typer.Option(
        False, help="Merge several fine-tunes of BASE with Model Breadcrumbs."
    ),
    beta: float = typer.Option(0.01, help="Breadcrumbs: drop this top fraction by magnitude."),
    gamma: float = typer.Option(0.85, help="Breadcrumbs: drop this bottom fraction."),
    weight: float = typer.Option(1.0, help="Breadcrumbs: scale of the summed task vectors."),
) -> None:
    """Fold a LoRA adapter into its base, or merge fine-tunes with Model Breadcrumbs."""
    try:
        from palaestra.train import breadcrumbs_merge_models, merge_adapter

        if breadcrumbs:
            if base is None:
                fail("--breadcrumbs needs --base")
            breadcrumbs_merge_models(base, folders, out, beta=beta, gamma=gamma, weight=weight)
        else:
            if len(folders) != 1:
                fail("give one adapter folder (or --breadcrumbs with several fine-tunes)")
            merge_adapter(folders[0], out, base)
    except ImportError as e:
        fail(import_hint(e, "palaestra merge"))
    except (ValueError, FileNotFoundError, KeyError) as e:
        fail(str(e))
    console.print(f"merged → {out} (load it as hf/{out.resolve()})")


from palaestra.cli.orm import orm_train_cmd  # noqa: E402

train_app.command("orm")(orm_train_cmd)
