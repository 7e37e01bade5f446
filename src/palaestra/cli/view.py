"""``palaestra view``: browse run directories in a local web page (the trajectory viewer)."""

from __future__ import annotations

from pathlib import Path

import typer

from palaestra.cli._common import console, fail
from palaestra.trajectory import DB_NAME, RunStore, StoreError


def _check_run_dir(run_dir: Path) -> None:
    """Fail with a clear message (and a hint) unless ``run_dir`` is a readable run."""
    if not run_dir.exists():
        fail(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        fail(f"{run_dir} is not a directory; pass a run directory (one holding {DB_NAME})")
    if not (run_dir / DB_NAME).exists():
        # Two levels deep only: a mistyped path may be a home directory.
        found = [*run_dir.glob(f"*/{DB_NAME}"), *run_dir.glob(f"*/*/{DB_NAME}")]
        inside = sorted(str(p.parent) for p in found)
        hint = (
            "\nIt holds these runs: " + " ".join(inside[:8]) + (" ..." if len(inside) > 8 else "")
            if inside
            else "\nCreate one with `palaestra rollout` or `palaestra eval`."
        )
        fail(f"{run_dir} is not a run directory (no {DB_NAME}).{hint}")
    try:
        RunStore(run_dir, readonly=True).close()
    except StoreError as e:
        fail(str(e))


def view_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories to browse."),
    host: str = typer.Option(
        "127.0.0.1",
        help="Interface to listen on. Trajectories are not access-controlled: "
        "keep it on loopback unless every machine that can reach it may read them.",
    ),
    port: int = typer.Option(8080, min=0, max=65535, help="TCP port (0: any free port)."),
    open_browser: bool = typer.Option(
        False, "--open/--no-open", help="Open the page in the default web browser."
    ),
) -> None:
    """Serve a web page to browse runs: filter episodes, replay them step by step, diff two.

    Reads the run stores directly, so runs still in progress show new episodes on refresh.
    """
    for d in run_dirs:
        _check_run_dir(d)
    try:
        from palaestra.web import bind, serve
    except ImportError as e:
        fail(str(e))
    try:
        sock = bind(host, port)
    except OSError as e:
        fail(
            f"cannot listen on {host}:{port}: {e.strerror or e}. Try another --port (0 = any free)."
        )

    def ready(url: str) -> None:
        console.print(f"Viewing {len(run_dirs)} run(s) at [bold]{url}[/]  (Ctrl+C to stop)")

    try:
        serve(run_dirs, sock, open_browser=open_browser, on_ready=ready)
    except ImportError as e:
        fail(str(e))
    except StoreError as e:
        fail(str(e))
    finally:
        sock.close()
