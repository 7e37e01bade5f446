"""``palaestra report``: an HTML + Markdown + JSON report of one or more runs, and a terminal summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from palaestra.cli._common import console, fail


def _prices(path: Path) -> dict[str, object]:
    import yaml

    if not path.is_file():
        fail(f"price table {path} does not exist")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        fail(
            f"{path} must map model ids to prices, e.g.\n"
            "  openai/gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.60}"
        )
    return {str(k): v for k, v in data.items()}


def report_cmd(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directories; each is compared with the first earlier run of its suite."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output directory (default: FIRST_RUN_DIR/report)."
    ),
    curve: bool = typer.Option(
        False, "--curve", help="Treat the runs as iterations, in order, and plot curves."
    ),
    prices: Path | None = typer.Option(
        None,
        help="YAML/JSON price table: model id -> {input_per_mtok, output_per_mtok} (USD per 1M).",
    ),
    alpha: float = typer.Option(0.05, help="Significance level of run comparisons."),
    n_boot: int = typer.Option(2000, help="Bootstrap resamples for confidence intervals."),
) -> None:
    """Report on runs: success and progress with confidence intervals per environment and
    suite group, failure taxonomy, pass@k/pass^k, tokens and cost; with several runs, a
    paired comparison of each with the first earlier run of its suite.

    Writes report.html (self-contained), report.md and report.json.
    """
    import importlib.util

    from pydantic import ValidationError

    missing = [m for m in ("matplotlib",) if importlib.util.find_spec(m) is None]
    if missing:
        fail(f'palaestra report needs {" and ".join(missing)}: pip install "palaestra[eval]"')

    from palaestra.eval import Price, print_summary, write_report
    from palaestra.trajectory import StoreError

    if not 0 < alpha < 1:
        fail(f"--alpha must be between 0 and 1, got {alpha}")
    if n_boot < 0:
        fail(f"--n-boot must be >= 0, got {n_boot}")
    table: dict[str, Price] | None = None
    if prices is not None:
        try:
            table = {k: Price.model_validate(v) for k, v in _prices(prices).items()}
        except ValidationError as e:
            fail(f"{prices}: bad price entry: {e.errors()[0]['msg']} at {e.errors()[0]['loc']}")
    target = out or run_dirs[0] / "report"
    try:
        files = write_report(
            run_dirs, target, curve=curve, prices=table, alpha=alpha, n_boot=n_boot
        )
    except StoreError as e:
        fail(str(e))
    print_summary(files.report, console)
    console.print(f"Wrote {files.html}, {files.markdown.name} and {files.json_path.name}")
