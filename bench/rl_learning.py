"""Does online RL improve an agent? RL steps vs the same budget of continued SFT (issue 18).

From one base SFT model (built by ``palaestra evolve`` with ``iterations: 0``
from the given config: expert demonstrations, SFT, evaluation), two arms
continue training for the same number of optimizer steps on the same fresh
training tasks, and are evaluated greedily on the config's fixed panel:

- ``rl``: ``palaestra train rl`` — GRPO (Shao et al. 2024) on episodes the
  policy plays itself, environment score as reward, KL to the base (``beta``);
  ``batch_size`` episodes per step in groups of ``num_generations``;
- ``sft``: continued SFT on the expert's demonstrations of the same tasks, with
  ``batch_size`` rows per step (the control the issue asks for).

Per arm and evaluation group: success with its 95% Wilson interval, the exact
McNemar p-value against the base and against the control (paired by task).
RL throughput (episodes/s, steps/s) comes from the RL run's logged metrics.
Stages resume like ``evolve``'s: re-run the command to continue.

Results: a table on stdout, ``OUT/rl_learning.md`` and
``bench/results/rl_learning.json`` (``rl_learning-seedN.json`` with ``--seed N``).

    python bench/rl_learning.py configs/evolve-rl-learning.yaml --out runs/rl-learning
    python bench/rl_learning.py configs/evolve-rl-learning.yaml --out runs/rl-l --seed 1 --lr 1e-4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from palaestra.env import Task, tasks
from palaestra.eval import compare, wilson
from palaestra.evolve import evolve, load_evolve_config
from palaestra.evolve._curriculum import SEED_STRIDE, check_no_leak
from palaestra.evolve._loop import (
    _episodes,
    _run_tasks,
    _Stages,
    _train,
    eval_suite_file,
    train_suite_file,
)
from palaestra.train import RLRunConfig

RESULTS = Path(__file__).with_name("results") / "rl_learning.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", help="an evolve config (model, env, base SFT budget, eval panel)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=30, help="optimizer steps of each arm")
    p.add_argument("--batch", type=int, default=16, help="episodes (rl) / rows (sft) per step")
    p.add_argument("--group", type=int, default=4, help="rl: episodes per task (GRPO's G)")
    p.add_argument("--lr", type=float, default=5e-5, help="rl learning rate")
    p.add_argument("--sft-lr", type=float, default=None, help="control lr (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="seed of both arms (default: config's)")
    p.add_argument("--beta", type=float, default=0.0, help="rl: KL penalty to the base")
    p.add_argument("--temperature", type=float, default=0.8, help="rl: sampling temperature")
    p.add_argument(
        "--tasks", type=int, default=None, help="fresh training tasks (default steps*batch/group)"
    )
    args = p.parse_args()
    try:
        result = run(args)
    except ValueError as e:
        p.error(str(e))
    Console().print(result["table"])
    path = RESULTS if args.seed is None else RESULTS.with_stem(f"{RESULTS.stem}-seed{args.seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole check (stages resume); returns the arms' numbers, the table and the settings."""
    config = load_evolve_config(args.config, iterations=0)
    if len(config.envs) != 1:
        raise ValueError("the config must name one environment (envs: [ID])")
    env_id = config.envs[0]
    params = dict(config.env_params.get(env_id, {}))
    console = Console()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out, console)

    base_run = evolve(config, out / "base", console=console)
    base = base_run.models[0]
    suite_path, eval_tasks = eval_suite_file(config, out / "base")

    n_tasks = args.tasks or max(args.steps * args.batch // args.group, 1)
    train_tasks: list[Task] = tasks(
        env_id, "train", n=n_tasks, difficulty=config.difficulties, start=SEED_STRIDE, **params
    )
    check_no_leak(train_tasks, eval_tasks)
    suite = Path(
        stages.run("tasks", lambda f: {"suite": str(train_suite_file(f, "rl", train_tasks))})[
            "suite"
        ]
    )

    # ---- rl arm
    rl_cfg = RLRunConfig(
        method=config.base_sft.method,
        env=env_id,
        agent="react",
        prompt=config.prompt,
        max_turns=config.max_turns,
        max_new_tokens=config.max_new_tokens,
        temperature=args.temperature,
        concurrency=args.batch,
        num_generations=args.group,
        batch_size=args.batch,
        max_length=config.base_sft.max_length,
        learning_rate=args.lr,
        max_steps=args.steps,
        beta=args.beta,
        logging_steps=1,
        seed=config.seed if args.seed is None else args.seed,
    )

    def rl_stage(f: Path) -> dict[str, Any]:
        from palaestra.train import train_rl

        started = time.perf_counter()
        meta = train_rl(base.model_id, rl_cfg, f / "model", task_list=train_tasks)
        hist = [h for h in meta.log_history if "rl/success_rate" in h]
        return {
            "model": str(meta.load_id),
            "seconds": time.perf_counter() - started,
            "steps": args.steps,
            "success_by_step": [h["rl/success_rate"] for h in hist],
            "reward_std": [h.get("reward_std") for h in hist],
            "episodes_per_s": [h.get("rl/episodes_per_s") for h in hist],
        }

    rl = stages.run("rl/train", rl_stage, fresh=True)

    # ---- sft control: expert demonstrations of the same tasks, same steps
    expert = stages.run(
        "sft/expert",
        lambda f: _run_tasks(
            config,
            f,
            suite,
            agent="expert",
            model=None,
            temperature=0.0,
            progress=True,
            console=console,
        ),
    )

    def sft_stage(f: Path) -> dict[str, Any]:
        from palaestra.data import build_sft, save

        ds, card = build_sft([expert["run"]])
        save(ds, card, f / "data")
        cfg = config.base_sft.model_copy(
            update={
                "max_steps": args.steps,
                "batch_size": args.batch,
                "learning_rate": args.sft_lr or config.base_sft.learning_rate,
                "seed": rl_cfg.seed,
            }
        )
        started = time.perf_counter()
        result = _train(base.model_id, str(f / "data"), cfg, f)
        return {**result, "seconds": time.perf_counter() - started}

    sft = stages.run("sft/train", sft_stage, fresh=True)

    evals: dict[str, str] = {"base": base.eval_dir}
    for arm, model in (("rl", rl["model"]), ("sft", sft["model"])):
        ev = stages.run(
            f"{arm}/eval",
            lambda f, m=model: _run_tasks(
                config,
                f,
                suite_path,
                agent="react",
                model=m,
                temperature=0.0,
                progress=True,
                console=console,
            ),
        )
        evals[arm] = ev["run"]

    arms = arm_numbers(evals)
    table = _table(arms, args.steps)
    (out / "rl_learning.md").write_text(table)
    return {
        "config": config.model_dump(mode="json"),
        "args": vars(args) | {"out": str(args.out), "config": str(args.config)},
        "rl": rl,
        "sft": sft,
        "evals": evals,
        "arms": arms,
        "table": table,
    }


def arm_numbers(evals: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per arm: success, its 95% Wilson interval, n, and McNemar against base and sft."""
    eps = {arm: _episodes(run) for arm, run in evals.items()}
    out: dict[str, dict[str, Any]] = {}
    for arm, es in eps.items():
        scored = [e for e in es if e.outcome != "error"]
        wins = sum(e.outcome == "success" for e in scored)
        row: dict[str, Any] = {
            "success": wins / max(len(scored), 1),
            "ci": wilson(wins, len(scored)) or (0.0, 0.0),
            "n": len(scored),
            "errors": len(es) - len(scored),
        }
        for ref in ("base", "sft"):
            if arm == ref or (ref == "sft" and arm == "base") or ref not in eps:
                continue
            s = compare(eps[ref], es, a_name=ref, b_name=arm).success
            if s is not None:
                row[f"vs_{ref}"] = {"p": s.p_value, "wins": s.wins, "losses": s.losses}
        out[arm] = row
    return out


def _table(arms: dict[str, dict[str, Any]], steps: int) -> str:
    lines = [
        f"Equal budget: {steps} optimizer steps per arm from the same base model.",
        "",
        "| arm | success [95% Wilson CI] | n | McNemar p vs base (wins/losses) | p vs sft |",
        "|---|---|---|---|---|",
    ]
    for arm, row in arms.items():
        lo, hi = row["ci"]
        cells = [f"{row['success']:.1%} [{lo:.1%}, {hi:.1%}]", str(row["n"])]
        for ref in ("base", "sft"):
            c = row.get(f"vs_{ref}")
            cells.append(f"{c['p']:.3g} ({c['wins']}/{c['losses']})" if c else "-")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
