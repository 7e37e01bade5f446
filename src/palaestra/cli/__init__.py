"""The ``palaestra`` command line (typer + rich). One module per subcommand."""

from __future__ import annotations

import typer

from palaestra.cli.data import data_app
from palaestra.cli.demo import demo
from palaestra.cli.envs import app as envs_app
from palaestra.cli.eval import eval_cmd
from palaestra.cli.evolve import evolve_cmd
from palaestra.cli.model import model_app
from palaestra.cli.orm import orm_app
from palaestra.cli.report import report_cmd
from palaestra.cli.rollout import rollout_cmd
from palaestra.cli.runs import app as runs_app
from palaestra.cli.serve_env import serve_env
from palaestra.cli.train import merge_cmd, train_app
from palaestra.cli.view import view_cmd

app = typer.Typer(
    name="palaestra",
    help="Build LLM agents, improve them from their own experience, and measure them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(envs_app, name="envs")
app.add_typer(runs_app, name="runs")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(orm_app, name="orm")
app.add_typer(model_app, name="model")
app.command("merge")(merge_cmd)
app.command("demo")(demo)
app.command("rollout")(rollout_cmd)
app.command("serve-env")(serve_env)
app.command("eval")(eval_cmd)
app.command("evolve")(evolve_cmd)
app.command("view")(view_cmd)
app.command("report")(report_cmd)


def main() -> None:
    app()


__all__ = ["app", "main"]
