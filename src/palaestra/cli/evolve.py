"""``palaestra evolve``: the self-improvement loop from a YAML config, resumable.

Its flags come from :class:`~palaestra.evolve.EvolveConfig`, which needs the
``train`` extra: the CLI loads this module when ``evolve`` is run (see
:mod:`palaestra.cli._lazy`), so other commands start without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from palaestra.cli._common import console, fail, import_hint
from palaestra.cli._options import CONFIG_OPTION, MODEL_DECLS, config_flags
from palaestra.evolve import EvolveConfig

#: Flags that are not ``--`` plus the field's name.
DECLS = {"model": MODEL_DECLS, "envs": ("--env", "-e")}


@config_flags(EvolveConfig, decls=DECLS)
def evolve_cmd(
    overrides: dict[str, Any],
    config_file: Path | None = typer.Argument(
        None, hidden=True, show_default=False, help="Old spelling of --config."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-run to resume)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Base SFT on expert demonstrations, then iterations of rollout → data → train → eval.

    Every stage is stored in OUT as it finishes; re-run the same command to resume
    after a crash or Ctrl-C (a changed setting is refused, except --iterations and
    --concurrency). The report lands in OUT/report/evolve.html. A starting config:
    configs/quickstart.yaml.
    """
    if config is not None and config_file is not None:
        fail("give the config file once: --config FILE (a bare FILE is its old spelling)")
    try:
        from palaestra.evolve import check_evolve_config, evolve, load_evolve_config
    except ImportError as e:
        fail(import_hint(e, "palaestra evolve"))
    try:
        cfg = load_evolve_config(config or config_file, **overrides)
        # Everything a stage needs is checked before the first one runs (and writes to OUT).
        check_evolve_config(cfg)
        result = evolve(cfg, out, console=console)
    except ImportError as e:
        fail(import_hint(e, "palaestra evolve"))
    except (ValueError, KeyError, FileNotFoundError) as e:
        fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    console.print(f"Report: {result.report_html}")
