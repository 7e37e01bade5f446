"""Helpers shared by the CLI subcommands: consoles and clear errors for bad input."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from palaestra.env import EnvSpec, spec

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error that names the problem and the fix, and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def spec_or_fail(env_id: str) -> EnvSpec:
    try:
        return spec(env_id)
    except KeyError as e:
        fail(f"{e.args[0]}\nSee `palaestra envs list`.")
