"""Sandbox latency: start-up per backend, a small ``python()`` call, a small ``exec()``.

For every backend that works on this machine (``unsafe-local`` included, as
the floor set by the interpreter and the process machinery alone):

- start: ``start()`` until the persistent interpreter answered ``ready``
  (namespaces, mounts, cgroup, ``python3 -I`` start-up), median and p90 over
  ``--starts`` sandboxes; ``close()`` is timed too.
- python: ``sb.python("x = x + 1")`` in a warm interpreter, over ``--calls``.
- exec: ``sb.exec(["true"])`` (a fresh process inside the sandbox), over
  ``--calls``.

Goals (issue 7): start < 50 ms, a small ``python()`` call < 5 ms. Results go
to a table on stdout and to ``bench/results/sandbox.json``.

    python bench/sandbox.py            # about 30 s on an idle machine
    python bench/sandbox.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from palaestra.sandbox import SandboxLimits, available_backends, open_sandbox

RESULTS = Path(__file__).parent / "results" / "sandbox.json"
console = Console()


def _ms(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    p90 = s[min(len(s) - 1, int(0.9 * len(s)))]
    return {"median_ms": round(statistics.median(s) * 1e3, 2), "p90_ms": round(p90 * 1e3, 2)}


def bench_backend(backend: str, starts: int, calls: int) -> dict[str, Any]:
    limits = SandboxLimits()
    start_s: list[float] = []
    close_s: list[float] = []
    py_s: list[float] = []
    exec_s: list[float] = []
    for i in range(starts):
        sb = open_sandbox(backend, limits=limits, allow_unsafe=backend == "unsafe-local")
        t0 = time.perf_counter()
        sb.start()
        start_s.append(time.perf_counter() - t0)
        if i == 0:  # the warm-interpreter numbers, on the first sandbox
            sb.python("x = 0")
            for _ in range(calls):
                t0 = time.perf_counter()
                sb.python("x = x + 1")
                py_s.append(time.perf_counter() - t0)
            for _ in range(calls):
                t0 = time.perf_counter()
                sb.exec(["true"])
                exec_s.append(time.perf_counter() - t0)
            assert sb.python("x").stdout.strip() == str(calls)
        t0 = time.perf_counter()
        sb.close()
        close_s.append(time.perf_counter() - t0)
    return {
        "backend": backend,
        "start": _ms(start_s),
        "close": _ms(close_s),
        "python_call": _ms(py_s),
        "exec_call": _ms(exec_s),
        "starts": starts,
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--starts", type=int, default=None, help="sandboxes started per backend")
    parser.add_argument("--calls", type=int, default=None, help="python()/exec() calls timed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    starts = args.starts or (10 if args.quick else 30)
    calls = args.calls or (50 if args.quick else 200)

    backends = available_backends()
    rows: list[dict[str, Any]] = []
    for name, problem in backends.items():
        if problem is not None:
            rows.append({"backend": name, "skipped": problem})
            console.print(f"[yellow]skip {name}[/]: {problem}")
            continue
        rows.append(bench_backend(name, starts, calls))
        console.print(f"{name}: {rows[-1]}")

    table = Table(title=f"Sandbox latency (ms, median / p90; {starts} starts, {calls} calls)")
    for col in ("backend", "start", "close", "python()", "exec()"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in rows:
        if "skipped" in r:
            table.add_row(r["backend"], "skipped", "", "", "")
            continue
        cells = [
            f"{r[k]['median_ms']:.1f} / {r[k]['p90_ms']:.1f}"
            for k in ("start", "close", "python_call", "exec_call")
        ]
        table.add_row(r["backend"], *cells)
    console.print(table)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "settings": {"quick": args.quick, "starts": starts, "calls": calls},
        "targets": {"start_ms_max": 50, "python_call_ms_max": 5},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
