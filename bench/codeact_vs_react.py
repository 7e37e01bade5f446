"""ReAct vs CodeAct with the expert test doubles on ``code-v1`` and ``toolqa-v1``.

Both loops run end to end through the rollout engine: the ReAct expert
(``expert``: ``Thought:``/``Action:`` replies parsed by the ReAct loop) and the
CodeAct expert (``codeact-expert``: each expert action written as a Python
call, run in the episode's sandboxed interpreter, stepping the environment
through host functions). A uniform-random ReAct agent gives the floor. Per
cell: success rate, mean environment steps and turns per episode, mean wall
time per episode. The difference in wall time is CodeAct's price: a sandbox
start per episode and an interpreter round trip per turn.

Results go to a table on stdout and to ``bench/results/codeact_vs_react.json``.

    python bench/codeact_vs_react.py            # 30 tasks per family, about 1 minute
    python bench/codeact_vs_react.py --n 9      # quick
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from palaestra.agent import get_agent
from palaestra.env import make, tasks
from palaestra.rollout import RolloutEngine

ENVS = ("code-v1", "toolqa-v1")
AGENTS = (("expert", "ReAct"), ("codeact-expert", "CodeAct"), ("random", "ReAct"))
OUT = Path(__file__).with_name("results") / "codeact_vs_react.json"


def run_cell(env_id: str, agent_name: str, n: int, split: str) -> dict[str, Any]:
    suite = tasks(env_id, split, n=n)  # type: ignore[arg-type]
    agent = get_agent(agent_name, max_steps=30)
    t0 = time.perf_counter()
    episodes = RolloutEngine(agent, lambda: make(env_id), concurrency=1).run(suite)
    total = time.perf_counter() - t0
    env_steps = [sum(s.action is not None for s in e.steps) for e in episodes]
    turns = [len({s.info.get("codeact_turn", s.index) for s in e.steps}) for e in episodes]
    return {
        "env": env_id,
        "agent": agent_name,
        "loop": dict(AGENTS)[agent_name],
        "episodes": len(episodes),
        "success": sum(e.outcome == "success" for e in episodes) / len(episodes),
        "errors": sum(e.outcome == "error" for e in episodes),
        "mean_env_steps": sum(env_steps) / len(episodes),
        "mean_turns": sum(turns) / len(episodes),
        "mean_episode_s": sum(e.wall_seconds for e in episodes) / len(episodes),
        "total_s": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="Tasks per family (cycles difficulties).")
    parser.add_argument("--split", default="test", choices=["train", "test", "heldout"])
    args = parser.parse_args()
    rows = [run_cell(e, a, args.n, args.split) for e in ENVS for a, _ in AGENTS]
    table = Table(
        title=f"ReAct vs CodeAct, expert doubles ({args.n} {args.split} tasks per family)"
    )
    for col in ("env", "loop", "agent", "success", "env steps", "turns", "s / episode", "errors"):
        table.add_column(col, justify="left" if col in ("env", "loop", "agent") else "right")
    for r in rows:
        table.add_row(
            r["env"],
            r["loop"],
            r["agent"],
            f"{r['success']:.0%}",
            f"{r['mean_env_steps']:.1f}",
            f"{r['mean_turns']:.1f}",
            f"{r['mean_episode_s']:.3f}",
            str(r["errors"]),
        )
    Console(width=140).print(table)
    from palaestra.sandbox import open_sandbox

    with open_sandbox("auto") as box:
        backend = box.backend
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "bench": "codeact_vs_react",
                "n": args.n,
                "split": args.split,
                "sandbox": backend,
                "machine": f"{platform.machine()}, {platform.python_version()}",
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
