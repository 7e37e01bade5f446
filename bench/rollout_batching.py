"""Benchmark: cross-episode batching in the rollout engine.

With the ``tiny`` model on CPU, runs the same ReAct rollout (house-v1, 16
episodes, a fixed number of turns each) at concurrency 1 and 16, and compares
both with the ceiling: bare batched ``model.generate`` on the same prompts.
With the ``scripted`` model (zero latency), measures the engine's own
overhead per step. Prints a table and writes ``bench/results/rollout_batching.json``.

    python bench/rollout_batching.py [--episodes 16] [--turns 4] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from palaestra.agent import ModelCall, ReactAgent
from palaestra.env import ToyEnv, make, tasks
from palaestra.model import GenerationConfig, Model, ScriptedModel, get_model
from palaestra.rollout import RolloutEngine

OUT = Path(__file__).parent / "results" / "rollout_batching.json"


class Recorder(Model):
    """Wraps a model and records every prompt batch it serves."""

    def __init__(self, inner: Model) -> None:
        self.inner, self.id = inner, inner.id
        self.prompts: list[ModelCall] = []

    def generate(self, prompts, config=None):  # type: ignore[no-untyped-def]
        self.prompts.extend(ModelCall(list(p), config) for p in prompts)
        return self.inner.generate(prompts, config)


def run(
    model: Model, concurrency: int, n: int, turns: int, gen: GenerationConfig
) -> dict[str, float]:
    # Fixed work per episode: max_steps turns, whatever the random model writes.
    agent = ReactAgent(max_steps=turns, generation=gen, max_prompt_tokens=512)
    suite = tasks("house-v1", "train", n=n, difficulty="easy")
    engine = RolloutEngine(agent, lambda: make("house-v1", max_episode_steps=0), model,
                           concurrency=concurrency)  # fmt: skip
    t0 = time.perf_counter()
    episodes = engine.run(suite)
    dt = time.perf_counter() - t0
    steps = sum(e.n_steps for e in episodes)
    tokens = sum(e.completion_tokens for e in episodes)
    return {"seconds": dt, "turns": steps, "turns_per_s": steps / dt, "tokens_per_s": tokens / dt,
            "mean_batch": engine.stats.mean_batch}  # fmt: skip


def bare_generate(
    model: Model, calls: list[ModelCall], batch: int, gen: GenerationConfig
) -> dict[str, float]:
    t0 = time.perf_counter()
    tokens = 0
    for i in range(0, len(calls), batch):
        outs = model.generate([c.messages for c in calls[i : i + batch]], gen)
        tokens += sum(o.completion_tokens for o in outs)
    dt = time.perf_counter() - t0
    return {
        "seconds": dt,
        "turns": len(calls),
        "turns_per_s": len(calls) / dt,
        "tokens_per_s": tokens / dt,
    }


def engine_overhead(n: int = 64, turns: int = 20) -> dict[str, float]:
    model = ScriptedModel(lambda conv: "Thought: x\nAction: inc")
    agent = ReactAgent(max_steps=turns)
    suite = [ToyEnv().make_task(i, "train", "hard") for i in range(n)]
    # Bare cost of the environment and prompt building, without the engine.
    env = ToyEnv()
    t0 = time.perf_counter()
    for t in suite:
        env.reset(t)
        for _ in range(turns):
            env.step("inc")
    env_only = time.perf_counter() - t0
    engine = RolloutEngine(agent, ToyEnv, model, concurrency=16)
    t0 = time.perf_counter()
    eps = engine.run(suite)
    dt = time.perf_counter() - t0
    steps = sum(e.n_steps for e in eps)
    return {"steps": steps, "ms_per_step": 1000 * dt / steps,
            "ms_per_step_excluding_env": 1000 * (dt - env_only) / steps}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64, help="max_new_tokens per turn")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = Recorder(get_model("tiny"))
    gen = GenerationConfig(max_new_tokens=args.tokens, temperature=0.0)
    run(model, 4, 4, 1, gen)  # warm-up
    model.prompts.clear()
    c1 = run(model, 1, args.episodes, args.turns, gen)
    model.prompts.clear()
    c16 = run(model, args.episodes, args.episodes, args.turns, gen)
    ceiling = bare_generate(model.inner, model.prompts, args.episodes, gen)
    over = engine_overhead()
    rows = {
        "concurrency 1": c1,
        f"concurrency {args.episodes}": c16,
        "bare batched generate": ceiling,
    }
    table = Table(title=f"tiny model, house-v1, {args.episodes} episodes x {args.turns} turns, "
                        f"{args.tokens} new tokens/turn ({torch.get_num_threads()} threads)")  # fmt: skip
    for col in ("setting", "seconds", "turns/s", "gen tokens/s", "mean batch"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for name, r in rows.items():
        table.add_row(name, f"{r['seconds']:.2f}", f"{r['turns_per_s']:.1f}", f"{r['tokens_per_s']:.0f}",
                      f"{r.get('mean_batch', args.episodes):.1f}")  # fmt: skip
    console = Console()
    console.print(table)
    speedup = c16["turns_per_s"] / c1["turns_per_s"]
    of_ceiling = c16["tokens_per_s"] / ceiling["tokens_per_s"]
    console.print(f"speed-up 16 vs 1: {speedup:.1f}x (goal >= 4x); "
                  f"{of_ceiling:.0%} of the bare-generate ceiling (goal >= 80%)")  # fmt: skip
    console.print(f"engine overhead (scripted model, toy env): {over['ms_per_step']:.3f} ms/step, "
                  f"{over['ms_per_step_excluding_env']:.3f} ms/step excluding env (goal < 1 ms)")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), "rows": rows, "speedup": speedup,
        "fraction_of_ceiling": of_ceiling, "engine_overhead": over,
        "machine": platform.platform(), "threads": torch.get_num_threads()}, indent=2))  # fmt: skip
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
