"""Ablation of the improvement data at equal budget (issue 6).

From one base SFT model (AgentTuning's baseline, built by ``palaestra evolve``
with ``iterations: 0`` from the same config), every arm continues training for
the same number of optimizer steps, on data from the same fresh training tasks,
and is evaluated on the same fixed panel:

- ``expert``: expert demonstrations of the tasks only (the control);
- ``refine``: + AgentRefine data from the base model's own mistakes, corrected by
  the expert (Fu et al., 2025);
- ``refine_nocorr``: the same samples with the corrected turn kept in context
  without loss — does the correction matter?;
- ``reflect``: + Agent-R revision trajectories spliced from search trees (Yuan et
  al., 2025);
- ``step_dpo``: expert SFT for part of the steps, then DPO on step-level pairs from
  the trees, ranked by Q-value (Agent Q, Putta et al., 2024); SFT + DPO steps equal
  the other arms' steps.

The base model's exploration runs ``search:best-first`` (sampling at the config's
temperature, progress as the value), so one set of episodes serves refine (their
committed paths) and reflect / step-DPO (their trees). Per arm and evaluation group:
success with its 95% Wilson interval and the exact McNemar p-value against the
``expert`` arm (paired by task). Stages resume like ``evolve``'s.

Results: a table on stdout, ``OUT/ablation.md`` and ``bench/results/ablation.json``.

    python bench/ablation.py configs/quickstart.yaml --out runs/ablation
    python bench/ablation.py configs/quickstart.yaml --out runs/abl --envs house-v1,toolqa-v1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from palaestra.env import tasks
from palaestra.eval import compare, evaluate, wilson
from palaestra.evolve import evolve, load_evolve_config
from palaestra.evolve._curriculum import SEED_STRIDE, check_no_leak
from palaestra.evolve._loop import (
    _episodes,
    _eval_config,
    _mix,
    _run_tasks,
    _Stages,
    _train,
    eval_suite_file,
    train_suite_file,
)
from palaestra.train import DPORunConfig

ARMS = ("expert", "refine", "refine_nocorr", "reflect", "step_dpo")
RESULTS = Path(__file__).with_name("results") / "ablation.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", help="an evolve config (model, envs, budgets, eval panel)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--envs", default=None, help="comma-separated, overrides the config's")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--max-nodes", type=int, default=24, help="search budget per episode")
    p.add_argument("--dpo-share", type=float, default=0.34, help="step_dpo: DPO share of steps")
    args = p.parse_args()
    arms = [a.strip() for a in args.arms.split(",")]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or "expert" not in arms:
        p.error(f"--arms: choose from {', '.join(ARMS)} and include expert (got {args.arms})")

    overrides: dict[str, Any] = {"iterations": 0}
    if args.envs:
        overrides["envs"] = args.envs.split(",")
        overrides["eval_envs"] = args.envs.split(",")
    config = load_evolve_config(args.config, **overrides)
    console = Console()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out, console)

    base_run = evolve(config, out / "base", console=console)
    base_model = base_run.models[0].model_id
    suite_path, eval_tasks = eval_suite_file(config, out)

    def train_tasks(f: Path) -> Path:
        ts = []
        for env in config.envs:
            ts += tasks(
                env,
                "train",
                n=config.rollouts,
                difficulty=config.difficulties,
                start=SEED_STRIDE,
                **config.env_params.get(env, {}),
            )
        check_no_leak(ts, eval_tasks)
        return train_suite_file(f, "ablation", ts)

    suite = Path(stages.run("tasks", lambda f: {"suite": str(train_tasks(f))})["suite"])
    expert = stages.run(
        "expert",
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

    def explore_stage(f: Path) -> dict[str, Any]:
        cfg = _eval_config(
            config,
            suite=str(suite),
            agent="search:best-first",
            model=base_model,
            temperature=config.temperature,
            search={"max_nodes": args.max_nodes, "value": "progress"},
        )
        stats = evaluate(cfg, f / "run", console=console)
        return {"run": str(f / "run"), "outcomes": dict(stats.outcomes)}

    explore = stages.run("explore", explore_stage)

    def data_stage(arm: str, f: Path) -> dict[str, Any]:
        from palaestra.data import (
            DatasetCard,
            build_pairs,
            build_refine,
            build_reflect,
            build_sft,
            save,
        )

        parts: list[tuple[str, Any]] = [("expert", build_sft([expert["run"]])[0])]
        if arm == "refine":
            parts.append(("refine", build_refine([explore["run"]])[0]))
        elif arm == "refine_nocorr":
            parts.append(("refine_nocorr", build_refine([explore["run"]], correction=False)[0]))
        elif arm == "reflect":
            parts.append(("reflect", build_reflect([explore["run"]])[0]))
        ds, counts = _mix(parts, config.seed)
        card = DatasetCard(
            builder="ablation",
            sources=[expert["run"], explore["run"]],
            parameters={"arm": arm},
            counts=counts,
        )
        save(ds, card, f / "data")
        result: dict[str, Any] = {"data": str(f / "data"), "counts": counts}
        if arm == "step_dpo":
            pairs, card = build_pairs([explore["run"]], kinds=("step", "tree"))
            save(pairs, card, f / "pairs")
            result.update(pairs=str(f / "pairs"), pair_rows=len(pairs))
        return result

    steps = config.train.max_steps
    results: dict[str, Any] = {}
    for arm in arms:
        data = stages.run(f"{arm}/data", lambda f, arm=arm: data_stage(arm, f), fresh=True)
        dpo_steps = round(steps * args.dpo_share) if arm == "step_dpo" else 0
        if dpo_steps and not data.get("pair_rows"):
            console.print(f"[yellow]{arm}: no step pairs in the trees; DPO skipped[/]")
            dpo_steps = 0
        sft_cfg = config.train.model_copy(update={"max_steps": steps - dpo_steps})
        trained = stages.run(
            f"{arm}/train",
            lambda f, data=data, cfg=sft_cfg: _train(base_model, data["data"], cfg, f),
            fresh=True,
        )
        model = trained["model"]
        if dpo_steps:
            dpo_cfg = config.dpo or DPORunConfig(
                method="full",
                learning_rate=config.train.learning_rate / 10,
                batch_size=config.train.batch_size,
                max_length=config.train.max_length,
            )
            dpo_cfg = dpo_cfg.model_copy(update={"max_steps": dpo_steps})
            tuned = stages.run(
                f"{arm}/dpo",
                lambda f, m=model, data=data, cfg=dpo_cfg: _train(
                    m, data["pairs"], cfg, f, dpo=True
                ),
                fresh=True,
            )
            model = tuned["model"]
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
        results[arm] = {"model": model, "eval": ev["run"], "data": data, "dpo_steps": dpo_steps}

    table = _table(results, config.train.max_steps)
    (out / "ablation.md").write_text(table)
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"config": config.model_dump(mode="json"), "arms": results, "table": table},
            indent=1,
            default=str,
        )
    )


def _table(results: dict[str, Any], steps: int) -> str:
    eps = {arm: _episodes(r["eval"]) for arm, r in results.items()}
    groups = sorted({str(e.metadata.get("suite_group", "all")) for es in eps.values() for e in es})

    def in_group(es: list[Any], g: str) -> list[Any]:
        return [e for e in es if str(e.metadata.get("suite_group", "all")) == g]

    head = "| arm | " + " | ".join(f"{g} success [95% CI] (p vs expert)" for g in groups) + " |"
    lines = [
        f"Equal budget: {steps} optimizer steps per arm from the same base model.",
        "",
        head,
        "|---|" + "---|" * len(groups),
    ]
    for arm, es in eps.items():
        cells = []
        for g in groups:
            ge = [e for e in in_group(es, g) if e.outcome != "error"]
            wins = sum(e.outcome == "success" for e in ge)
            lo, hi = wilson(wins, len(ge)) or (0.0, 0.0)
            cell = f"{wins / max(len(ge), 1):.0%} [{lo:.0%}, {hi:.0%}]"
            if arm != "expert":
                c = compare(in_group(eps["expert"], g), ge, a_name="expert", b_name=arm)
                if c.success is not None:
                    cell += f" (p={c.success.p_value:.2g})"
            cells.append(cell)
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
