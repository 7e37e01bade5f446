"""``python -m palaestra.env.server --port N``: the same as ``palaestra serve-env``."""

from __future__ import annotations

import typer

from palaestra.cli.serve_env import serve_env


def main() -> None:
    typer.run(serve_env)


if __name__ == "__main__":
    main()
