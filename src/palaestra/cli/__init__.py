"""The ``palaestra`` command line (typer + rich). One module per subcommand.

The flags of commands with settings are derived from their pydantic configs
(:mod:`palaestra.cli._options`); ``train``, ``orm``, ``merge`` and ``evolve``
are imported only when run (:mod:`palaestra.cli._lazy`), as they need torch.
"""

from __future__ import annotations

import typer

from palaestra.cli._lazy import LazyCommand, LazyGroup
from palaestra.cli.data import data_app
from palaestra.cli.demo import demo
from palaestra.cli.envs import app as envs_app
from palaestra.cli.eval import eval_cmd
from palaestra.cli.model import model_app
from palaestra.cli.report import report_cmd
from palaestra.cli.rollout import rollout_cmd
from palaestra.cli.runs import app as runs_app
from palaestra.cli.serve_env import serve_env
from palaestra.cli.view import view_cmd


class PalaestraGroup(LazyGroup):
    LAZY = {  # noqa: RUF012 - a class-level table, read only
        "train": LazyCommand(
            "palaestra.cli.train:train_app", "Fine-tune a model on a built dataset (SFT or DPO)."
        ),
        "orm": LazyCommand(
            "palaestra.cli.orm:orm_app", "Outcome reward model: label runs with predicted success."
        ),
        "merge": LazyCommand(
            "palaestra.cli.train:merge_cmd",
            "Fold a LoRA adapter into its base, or merge fine-tunes with Model Breadcrumbs.",
        ),
        "evolve": LazyCommand(
            "palaestra.cli.evolve:evolve_cmd",
            "Base SFT on expert demonstrations, then iterations of rollout → data → train → eval.",
        ),
    }


app = typer.Typer(
    name="palaestra",
    help="Build LLM agents, improve them from their own experience, and measure them.",
    cls=PalaestraGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(envs_app, name="envs")
app.add_typer(runs_app, name="runs")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.command("demo")(demo)
app.command("rollout")(rollout_cmd)
app.command("serve-env")(serve_env)
app.command("eval")(eval_cmd)
app.command("view")(view_cmd)
app.command("report")(report_cmd)


def main() -> None:
    app()


__all__ = ["app", "main"]
