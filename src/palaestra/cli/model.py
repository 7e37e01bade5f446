"""``palaestra model build-tiny``: build the ``tiny`` model, optionally pretrained on environment text."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from palaestra.cli._common import console, fail, import_hint

model_app = typer.Typer(help="Build the models Palaestra makes itself.", no_args_is_help=True)


@model_app.command("build-tiny")
def build_tiny_cmd(
    pretrain: bool = typer.Option(
        False,
        "--pretrain/--no-pretrain",
        help="Pretrain on generated environment text (loss on every token) so the model can "
        "copy names before agent SFT. Without it: the random-init model, cached.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (needed with --pretrain)."
    ),
    preset: str = typer.Option("", help="Size preset: '' (3.7M) or 'micro'."),
    seed: int = typer.Option(0, help="Seed of the weights, the corpus and the data order."),
    episodes: int = typer.Option(6000, min=1, help="Episodes in the pretraining corpus."),
    steps: int = typer.Option(500, min=1, help="Pretraining optimizer steps."),
    batch_size: int = typer.Option(16, min=1, help="Blocks per step."),
    seq_len: int = typer.Option(512, min=17, help="Tokens per block."),
    learning_rate: float = typer.Option(1e-3, min=0.0, help="Peak learning rate (cosine)."),
    synthetic: float = typer.Option(
        0.0,
        min=0.0,
        max=0.99,
        help="Chance of one more synthetic copy/lookup document after each episode "
        "(p: p/(1-p) documents per episode on average).",
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Continue from this model folder (a pretraining stage)."
    ),
) -> None:
    """Build ``tiny``; with --pretrain, run the pretraining recipe and write its card.

    The result loads as ``hf/<out>`` everywhere a model id is taken (train sft, eval, evolve).
    Pretraining the default preset for 500 steps takes ~40 min on 2 CPU cores.
    """
    if pretrain and out is None:
        fail("--pretrain needs --out DIR: where the pretrained model is written")
    if out is not None and (out / "config.json").exists():
        fail(f"{out} already holds a model; pick a new --out or remove it")
    try:
        from palaestra.data import pretrain_tiny, tiny_path
        from palaestra.model import PretrainConfig
        from palaestra.model import load_pretrain_card as load_card
    except ImportError as e:
        fail(import_hint(e, "palaestra model build-tiny"))
    if not pretrain:
        try:
            folder = tiny_path(preset, seed=seed)
        except ValueError as e:
            fail(str(e))
        console.print(f"tiny{'/' + preset if preset else ''}: {folder}")
        return
    assert out is not None
    try:
        config = PretrainConfig(
            preset=preset,
            seed=seed,
            episodes=episodes,
            max_steps=steps,
            batch_size=batch_size,
            seq_len=seq_len,
            learning_rate=learning_rate,
            synthetic=synthetic,
            init_from=None if init_from is None else str(init_from),
        )
        folder = pretrain_tiny(config, out)
    except ValueError as e:
        fail(str(e))
    card = load_card(folder)
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
