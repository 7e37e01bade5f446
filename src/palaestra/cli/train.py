"""``palaestra train sft|dpo|rl`` and ``palaestra merge``: fine-tune over TRL + PEFT, fold or merge results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from palaestra.cli._common import console, fail, import_hint
from palaestra.cli._options import CONFIG_OPTION, MODEL_DECLS, config_flags
from palaestra.train import DPORunConfig, RLRunConfig, SFTRunConfig

train_app = typer.Typer(
    help="Fine-tune a model: on a built dataset (SFT, DPO, an outcome reward model) or online "
    "on an environment (RL).",
    no_args_is_help=True,
)

_MODEL_HELP = "Base model: tiny, gemma-270m, hf/DIR or a checkpoint folder."
_DATA_HELP = "Dataset folder (palaestra data ...), or a .jsonl/.parquet file."
#: Flags that are not ``--`` plus the field's name (``--lr``: the old, short spelling).
DECLS = {"learning_rate": ("--learning-rate", "--lr")}


def _check_data(data: Path) -> None:
    """Refuse a missing dataset before the model is loaded (seconds to minutes)."""
    if not data.exists():
        fail(f"--data {data} does not exist: pass a folder from `palaestra data ...`, or a file")
    if data.is_file() and data.suffix not in (".jsonl", ".json", ".parquet"):
        fail(f"--data {data} is not a dataset folder, .jsonl or .parquet file")


@train_app.command("sft")
@config_flags(SFTRunConfig, decls=DECLS)
def sft_cmd(
    overrides: dict[str, Any],
    model: str = typer.Option(..., *MODEL_DECLS, help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help=_DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (adapter or model)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Supervised fine-tuning with loss on the agent's trainable turns.

    Settings come from flags, else from --config, else the defaults.
    """
    try:
        from palaestra.train import load_sft_config, train_sft

        cfg = load_sft_config(config, **overrides)
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
@config_flags(DPORunConfig, decls=DECLS)
def dpo_cmd(
    overrides: dict[str, Any],
    model: str = typer.Option(..., *MODEL_DECLS, help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help=_DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (adapter or model)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Direct Preference Optimization on prompt/chosen/rejected pairs.

    Settings come from flags, else from --config, else the defaults.
    """
    try:
        from palaestra.train import load_dpo_config, train_dpo

        cfg = load_dpo_config(config, **overrides)
        _check_data(data)
        meta = train_dpo(model, data, cfg, out)
    except ImportError as e:
        fail(import_hint(e, "palaestra train dpo"))
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    console.print(f"DPO done in {meta.wall_seconds:.0f}s → {out}\nload it as: {meta.load_id}")


@train_app.command("rl")
@config_flags(RLRunConfig, decls=DECLS)
def rl_cmd(
    overrides: dict[str, Any],
    model: str = typer.Option(..., *MODEL_DECLS, help=_MODEL_HELP),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (adapter or model; episodes in OUT/episodes)."
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Online RL (GRPO, or RLOO) on an environment's tasks, episodes played by the rollout engine.

    Settings come from flags, else from --config, else the defaults.
    """
    try:
        from palaestra.train import load_rl_config, train_rl

        cfg = load_rl_config(config, **overrides)
        meta = train_rl(model, cfg, out)
    except ImportError as e:
        fail(import_hint(e, "palaestra train rl"))
    except (ValueError, FileNotFoundError, KeyError) as e:
        fail(str(e))
    rewards = [h["reward"] for h in meta.log_history if "reward" in h]
    last = f", reward {rewards[-1]:.3f}" if rewards else ""
    console.print(
        f"RL ({cfg.algorithm}) done in {meta.wall_seconds:.0f}s{last} → {out}\n"
        f"episodes: palaestra view {out / 'episodes'}\nload it as: {meta.load_id}"
    )


def merge_cmd(
    folders: list[Path] = typer.Argument(..., help="An adapter folder, or several fine-tunes."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the merged model."),
    base: str | None = typer.Option(
        None,
        "--base",
        *MODEL_DECLS,
        help="Base model (default: the adapter's own); needed with --breadcrumbs.",
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
