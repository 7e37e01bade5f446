"""Does inference-time search help the same model? Greedy ReAct vs best-first vs MCTS.

Koh et al. ("Tree Search for Language Model Agents", 2024) and LATS report that
search over environment states raises success with the same policy model. Here
the policy is any model id (by default the base SFT model of a finished
quickstart run); every agent runs on the same fresh tasks: greedy ReAct
(temperature 0), ``search:best-first`` and ``search:mcts`` with the
environment's progress as the value function, the same branching and a node
budget per episode. Per cell: success with its 95% Wilson interval, mean nodes
expanded and mean model tokens per episode, wall time.

Results go to a table on stdout and to ``bench/results/search_gain.json``.

    python bench/search_gain.py --model hf/runs/quickstart/iter-0/train/model
    python bench/search_gain.py --model tiny --n 4 --max-nodes 8     # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from palaestra.eval import EvalConfig, evaluate, wilson
from palaestra.trajectory import RunStore

OUT = Path(__file__).with_name("results") / "search_gain.json"


def run_cell(args: argparse.Namespace, agent: str, suite: Path, out: Path) -> dict[str, Any]:
    search = (
        {"branching": args.branching, "max_nodes": args.max_nodes, "value": "progress"}
        if agent.startswith("search:")
        else {}
    )
    cfg = EvalConfig(
        suite=str(suite),
        agent=agent,
        model=args.model,
        prompt=args.prompt,
        max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency,
        search=search,
    )
    t0 = time.perf_counter()
    evaluate(cfg, out / agent.replace(":", "-"), console=Console(quiet=True), progress=False)
    total = time.perf_counter() - t0
    with RunStore(out / agent.replace(":", "-"), readonly=True) as store:
        eps = list(store.episodes())
    wins = sum(e.outcome == "success" for e in eps)
    nodes = [int((e.metadata.get("search") or {}).get("nodes", 0)) for e in eps]
    tokens = [
        int((e.metadata.get("search") or {}).get("tokens", 0))
        or sum(s.prompt_tokens + s.completion_tokens for s in e.steps)
        for e in eps
    ]
    return {
        "agent": agent,
        "episodes": len(eps),
        "success": wins / max(len(eps), 1),
        "wilson95": wilson(wins, len(eps)),
        "errors": sum(e.outcome == "error" for e in eps),
        "mean_nodes": sum(nodes) / max(len(eps), 1),
        "mean_tokens": sum(tokens) / max(len(eps), 1),
        "total_s": total,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="hf/runs/quickstart/iter-0/train/model")
    p.add_argument("--env", default="house-v1")
    p.add_argument("--difficulty", default="easy")
    p.add_argument("--params", default='{"contents_visible": true}', help="JSON generator params")
    p.add_argument("--prompt", default="act", choices=["full", "compact", "act"])
    p.add_argument("--n", type=int, default=30, help="fresh test tasks")
    p.add_argument("--max-steps", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--branching", type=int, default=4)
    p.add_argument("--max-nodes", type=int, default=24)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--agents", default="react,search:best-first,search:mcts")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        suite = out / "suite.yaml"
        entry = {
            "env": args.env,
            "split": "test",
            "n": args.n,
            "difficulty": args.difficulty,
            "params": json.loads(args.params),
        }
        suite.write_text(yaml.safe_dump({"id": "search-gain-v1", "entries": [entry]}))
        rows = [run_cell(args, a, suite, out) for a in args.agents.split(",")]

    table = Table(title=f"search vs greedy: {args.model} on {args.env} {args.difficulty}")
    for col in ("agent", "episodes", "success [95% CI]", "nodes/ep", "tokens/ep", "seconds"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for r in rows:
        lo, hi = r["wilson95"] or (0.0, 0.0)
        table.add_row(
            r["agent"],
            str(r["episodes"]),
            f"{r['success']:.0%} [{lo:.0%}, {hi:.0%}]",
            f"{r['mean_nodes']:.1f}",
            f"{r['mean_tokens']:.0f}",
            f"{r['total_s']:.0f}",
        )
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"config": vars(args), "machine": platform.machine(), "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
