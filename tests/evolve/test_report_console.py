"""evolve's closing terminal table fits 80 columns with the quickstart's four groups."""

from __future__ import annotations

from rich.console import Console

from palaestra.evolve._report import console_table

GROUPS = ["heldin", "recovery", "perturbed", "heldout"]


def _rows() -> list[dict[str, object]]:
    cell = {"value": 1.0, "low": 0.839, "high": 1.0, "n": 20}
    return [
        {"label": label, "optimizer_steps": steps, "groups": {g: cell for g in GROUPS}}
        for label, steps in (("base", 120), ("iter1-improve", 180), ("iter1-control", 180))
    ]


def test_console_table_fits_80_columns() -> None:
    console = Console(width=80, record=True)
    console.print(console_table(_rows(), GROUPS))
    lines = [line for line in console.export_text().splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "model" in line)
    # Every header whole, on one line (they were cut to "recove…" over four lines).
    assert all(g in header.split() for g in ["model", "steps", *GROUPS]), header
    body = [line for line in lines if line.split()[0] in ("base", "iter1-improve", "iter1-control")]
    assert len(body) == 3, lines  # one line per model: no cell folded
    assert body[0].split()[2:4] == ["100%", "84–100"], body[0]


def test_missing_group_is_a_dash() -> None:
    rows = _rows()
    del rows[0]["groups"]["heldout"]  # type: ignore[attr-defined]
    console = Console(width=80, record=True)
    console.print(console_table(rows, GROUPS))
    base = next(
        line for line in console.export_text().splitlines() if line.strip().startswith("base")
    )
    assert base.split()[-1] == "-"
