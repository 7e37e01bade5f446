"""RL throughput: ``train rl`` engine mode vs tool mode vs a plain TRL GRPO script (issue 18).

Three arms on the same model (``tiny``, ~3.7M parameters, built locally), the
same tasks (``--n`` house-v1 train tasks) and the same GRPO settings (group
size, batch, completion budget ``--max-length``, temperature 1, LoRA, seed),
each for ``--steps`` optimizer steps in its own process, one run each:

- ``engine``: ``build_rl_trainer`` with ``mode="engine"`` — the rollout engine
  plays ReAct episodes (``--max-turns`` turns of up to ``--max-new-tokens``);
- ``tool``: ``mode="tool"`` — TRL's tool-calling loop over the
  ``environment_factory`` adapter (up to ``--max-turns`` tool rounds);
- ``trl``: what a user writes by hand with TRL's documented API: GRPOTrainer
  on a plain single-turn prompt dataset (each task's instruction and first
  observation as one user message) with a trivial reward, no environment.

Episodes/s is rollouts (episodes, or completions for ``trl``) over the whole
``train()`` time (generation, environment, scoring and optimizer steps);
tokens/s counts the tokens the model generated (TRL's
``completions/mean_length``, which counts only model tokens in multi-turn
modes, times the batch) over the same time; prompt tokens are the first
prompt's (tool mode's carries the tool's JSON schema and instructions). The untrained model rarely writes
a valid action or tool call, so episode *lengths* differ by mode: compare
tokens/s for the machinery's cost, episodes/s for what a run gets done.
Prints a table and writes ``bench/results/rl_throughput.json``.

    python bench/rl_throughput.py            # --quick: 3 steps, 16 tasks (~2-3 min on 2 cores)
    python bench/rl_throughput.py --steps 10 --n 32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENV = "house-v1"
ARMS = ("trl", "engine", "tool")


def _settings(a: argparse.Namespace, mode: str) -> Any:
    from palaestra.train import RLRunConfig

    return RLRunConfig(
        mode=mode,  # pyright: ignore[reportArgumentType]
        env=ENV,
        n=a.n,
        num_generations=a.num_generations,
        batch_size=a.batch_size,
        max_steps=a.steps,
        max_length=a.max_length,
        max_turns=a.max_turns,
        max_new_tokens=a.max_new_tokens,
        prompt="compact",
        learning_rate=1e-4,
        beta=0.0,
        progress=False,
        logging_steps=1,
        concurrency=a.batch_size,
    )


def _plain_trl(a: argparse.Namespace, out: str) -> Any:
    """GRPOTrainer as TRL documents it: a prompt dataset and a reward function."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    from palaestra.env import make, tasks
    from palaestra.train import resolve_model_path

    env = make(ENV)
    prompts: list[list[dict[str, str]]] = []
    for task in tasks(ENV, "train", a.n):
        first = env.reset(task).text
        prompts.append([{"role": "user", "content": f"{task.instruction}\n\n{first}"}])
    env.close()

    def brevity(completions: list[Any], **_: Any) -> list[float | None]:
        return [-len(c[0]["content"]) / 100 for c in completions]

    path = resolve_model_path(a.model)
    return GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        reward_funcs=[brevity],
        args=GRPOConfig(
            output_dir=out,
            learning_rate=1e-4,
            max_steps=a.steps,
            per_device_train_batch_size=a.batch_size,
            num_generations=a.num_generations,
            max_completion_length=a.max_length,
            temperature=1.0,
            beta=0.0,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available(),
            seed=0,
        ),
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=AutoTokenizer.from_pretrained(path),
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear"),
    )


def _arm(which: str, a: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = tempfile.mkdtemp()
    if which == "trl":
        trainer = _plain_trl(a, out)
    else:
        from palaestra.train import build_rl_trainer

        trainer, _, _, _ = build_rl_trainer(a.model, _settings(a, which), out)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    steps = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    episodes = len(steps) * a.batch_size
    tokens = sum(float(h["completions/mean_length"]) * a.batch_size for h in steps)
    turns = [float(h["rl/turns_mean"]) for h in steps if "rl/turns_mean" in h]
    # TRL's num_tokens is cumulative prompt + model-generated tokens.
    seen = max(float(h.get("num_tokens", 0)) for h in steps)
    return {
        "arm": which,
        "steps": len(steps),
        "episodes": episodes,
        "generated_tokens": tokens,
        "seconds": seconds,
        "episodes_per_s": episodes / seconds,
        "tokens_per_s": tokens / seconds,
        "tokens_per_episode": tokens / episodes,
        "prompt_tokens_per_episode": (seen - tokens) / episodes,
        "turns_mean": sum(turns) / len(turns) if turns else 1.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description="RL throughput: engine vs tool mode vs plain TRL.")
    p.add_argument("--quick", action="store_true", help="the default settings (kept for Makefile)")
    p.add_argument("--model", default="tiny")
    p.add_argument("--n", type=int, default=16, help="house-v1 train tasks")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256, help="completion budget (tokens)")
    p.add_argument("--max-turns", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=48, help="engine mode: tokens per turn")
    # One thread: on a shared 2-core machine two threads thrash (8x slower generation, measured).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.arm:
        print(json.dumps(_arm(a.arm, a)))
        return
    from rich.console import Console
    from rich.table import Table

    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"}
    rows: list[dict[str, Any]] = []
    for arm in ARMS:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--arm", arm]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            sys.stderr.write(done.stderr[-4000:])
            raise SystemExit(f"arm {arm} failed")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = next(r for r in rows if r["arm"] == "trl")
    table = Table(title=f"RL throughput: tiny on {a.n} {ENV} tasks, {a.steps} steps per arm")
    for col in (
        "arm",
        "episodes/s",
        "tokens/s",
        "tokens/episode",
        "prompt tokens",
        "turns",
        "seconds",
        "x trl eps/s",
        "x trl tok/s",
        "peak MB",
    ):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for r in rows:
        r["ratio_episodes_per_s"] = r["episodes_per_s"] / base["episodes_per_s"]
        r["ratio_tokens_per_s"] = r["tokens_per_s"] / base["tokens_per_s"]
        table.add_row(
            r["arm"],
            f"{r['episodes_per_s']:.2f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['tokens_per_episode']:.0f}",
            f"{r['prompt_tokens_per_episode']:.0f}",
            f"{r['turns_mean']:.1f}",
            f"{r['seconds']:.1f}",
            f"{r['ratio_episodes_per_s']:.2f}",
            f"{r['ratio_tokens_per_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    Console(width=150).print(table)
    result = {"settings": vars(a) | {"env": ENV}, "arms": rows}
    out = Path(__file__).parent / "results" / "rl_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
