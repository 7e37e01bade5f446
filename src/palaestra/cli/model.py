"""``palaestra model build-tiny``: build the ``tiny`` model, optionally pretrained on environment text.

Its flags come from :class:`~palaestra.model.PretrainConfig` (the recipe, so the
same keys work in a ``--config`` YAML file); ``--steps``, the flag's spelling
before that, still sets ``--max-steps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from palaestra._config import load_config
from palaestra.cli._common import console, fail, import_hint
from palaestra.cli._options import CONFIG_OPTION, config_flags
from palaestra.model import PretrainConfig, load_pretrain_card

model_app = typer.Typer(help="Build the models Palaestra makes itself.", no_args_is_help=True)

#: Old spellings of derived flags (hidden, still accepted).
OLD_FLAGS = {"max_steps": ("--steps",)}
#: The settings that also choose the random-init model (no --pretrain); the rest is the recipe.
BUILD_SETTINGS = frozenset({"preset", "seed"})


@model_app.command("build-tiny")
@config_flags(PretrainConfig, old_flags=OLD_FLAGS)
def build_tiny_cmd(
    overrides: dict[str, Any],
    pretrain: bool = typer.Option(
        False,
        "--pretrain/--no-pretrain",
        help="Pretrain on generated environment text (loss on every token) so the model can "
        "copy names before agent SFT. Without it: the random-init model, cached.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (needed with --pretrain)."
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Build ``tiny``; with --pretrain, run the pretraining recipe and write its card.

    Without --pretrain only --preset and --seed apply. The result loads as
    ``hf/<out>`` everywhere a model id is taken (train sft, eval, evolve).
    Pretraining the default preset takes ~40 min per 500 steps on 2 CPU cores.

    Settings come from flags, else from --config, else the defaults.
    """
    if not pretrain:
        unused = sorted(set(overrides) - BUILD_SETTINGS)
        if config is not None or unused:
            given = ["--config"] if config is not None else []
            given += ["--" + k.replace("_", "-") for k in unused]
            fail(f"{', '.join(given)} only apply with --pretrain (the recipe); add --pretrain")
    if pretrain and out is None:
        fail("--pretrain needs --out DIR: where the pretrained model is written")
    if out is not None and (out / "config.json").exists():
        fail(f"{out} already holds a model; pick a new --out or remove it")
    try:
        cfg = load_config(PretrainConfig, config, "pretraining", overrides)
    except ValueError as e:
        fail(str(e))
    try:
        from palaestra.data import pretrain_tiny, tiny_path
    except ImportError as e:
        fail(import_hint(e, "palaestra model build-tiny"))
    if not pretrain:
        try:
            folder = tiny_path(cfg.preset, seed=cfg.seed)
        except ValueError as e:
            fail(str(e))
        console.print(f"tiny{'/' + cfg.preset if cfg.preset else ''}: {folder}")
        return
    assert out is not None
    try:
        folder = pretrain_tiny(cfg, out)
    except ValueError as e:
        fail(str(e))
    card = load_pretrain_card(folder)
    table = Table(title=f"pretrained tiny: {folder}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("corpus episodes", str(sum(card.corpus_episodes.values())))
    table.add_row("corpus tokens", f"{card.corpus_tokens:,}")
    table.add_row("tokens seen", f"{card.tokens_seen:,}")
    table.add_row("steps", str(card.steps))
    table.add_row("final loss", "-" if card.final_loss is None else f"{card.final_loss:.3f}")
    table.add_row("steps/s", f"{card.steps_per_second:.3f}")
    table.add_row("tokens/s", f"{card.tokens_per_second:,.0f}")
    table.add_row("wall", f"{card.wall_seconds / 60:.1f} min")
    console.print(table)
    console.print(f"load it as hf/{folder}")
