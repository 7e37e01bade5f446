"""Subcommands built when they run: ``train``, ``orm``, ``merge`` and ``evolve`` need torch.

Their flags are derived from configs (:mod:`palaestra.cli._options`) whose
modules import the ``train`` extra, and typer builds every command of an app
before it runs one. So the root group holds a placeholder (name and one-line
help, enough for ``palaestra --help``) for each of these, and imports the real
command only when it is the one invoked: ``palaestra envs list`` never imports
torch. Where the import fails (a core install without the extra), the command
is one that prints the install line and exits 2, whatever its arguments.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

from palaestra.cli._common import fail, import_hint


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand imported when it runs: ``target`` is ``"module:attr"`` (a function or Typer)."""

    target: str
    help: str


class LazyGroup(TyperGroup):
    """A typer group whose ``LAZY`` subcommands are imported when invoked (see the module doc)."""

    LAZY: ClassVar[dict[str, LazyCommand]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, lazy in self.LAZY.items():
            self.commands.setdefault(name, _Placeholder(name=name, help=lazy.help))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name is not None and isinstance(self.commands.get(name), _Placeholder):
            self.commands[name] = load_command(name, self.LAZY[name])
        return super().resolve_command(ctx, args)


class _Placeholder(TyperCommand):
    """What a lazy subcommand is until it runs: its name and help, for the command list."""


def load_command(name: str, lazy: LazyCommand) -> Any:
    """The click command of ``lazy``; a stand-in naming the missing extra if it cannot import."""
    module, _, attr = lazy.target.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        return _unavailable(name, e)
    if isinstance(obj, typer.Typer):
        cmd = typer.main.get_command(obj)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(obj)
        cmd = typer.main.get_command(single)
    cmd.name = name
    return cmd


def _unavailable(name: str, error: ImportError) -> Any:
    message = import_hint(error, f"palaestra {name}")
    single = typer.Typer(add_completion=False)

    @single.command(
        name,
        help=f"Unavailable: {message}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    def unavailable(args: list[str] | None = typer.Argument(None, hidden=True)) -> None:
        fail(message)

    cmd = typer.main.get_command(single)
    cmd.name = name
    return cmd
