"""``evolve``: the self-improvement loop, stage by stage, resumable.

Iteration 0 is AgentTuning's baseline ("AgentTuning: Enabling Generalized
Agent Abilities for LLMs", Zeng et al. 2023): expert demonstrations of the
training environments, SFT of the base model on them, evaluation. Each
further iteration follows AgentEvol's explore → learn cycle ("AgentGym:
Evolving Large Language Model-based Agents across Diverse Environments", Xi
et al. 2024) with AgentRefine's refinement data ("AgentRefine: Enhancing
Agent Generalization through Refinement Tuning", Fu et al. 2025):

1. the curriculum proposes fresh training tasks (:mod:`._curriculum`);
2. **improving arm**: the current model samples them (temperature > 0, or a
   search agent); the data mixes expert demonstrations of the same tasks,
   refinement data (its own mistakes without loss, the environment's feedback,
   the expert's correction with loss), its own successes (AgentEvol's
   filtered cloning) and optionally Agent-R revisions from search trees; SFT
   continues from the arm's last model; optional DPO on pairs from the
   rollouts;
3. **control arm**: the same tasks, expert demonstrations only, the same
   optimizer steps and batch size — so a gain of the improving arm is not
   just more training;
4. both arms are evaluated on the same suites (held-in, held-out, perturbed,
   recovery: fixed task seeds, never trained on — enforced);
5. the improving arm's rollout results drive the next curriculum.

Every stage writes into its own folder and marks completion with
``stage.json`` (written atomically, last). A killed run restarts at the
first unfinished stage: rollouts and evaluations resume episode by episode
from their stores; a half-written dataset or model folder is discarded and
rebuilt (training restarts from that stage's input model).

Deviation from AgentEvol: it samples and trains on all its environments
with one model merged across iterations; we keep one model per arm and
continue training it, and train with a fixed number of steps per iteration
(equal across arms) instead of epochs over a growing set.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from rich.console import Console

from palaestra._config import config_changes, refuse_changes
from palaestra.env import Task
from palaestra.evolve._config import EvolveConfig, check_evolve_config
from palaestra.evolve._curriculum import (
    Cell,
    Plan,
    assess,
    check_no_leak,
    initial_cells,
    next_cells,
    propose,
)

log = logging.getLogger("palaestra.evolve")

ARMS = ("improve", "control")
#: Fields that may change when resuming (they do not change what was computed).
RESUMABLE = frozenset({"concurrency", "iterations"})


class StageRecord(BaseModel):
    """``stage.json``: a finished stage and what it produced."""

    stage: str
    seconds: float
    result: dict[str, Any] = Field(default_factory=dict[str, Any])


class ModelRecord(BaseModel):
    """One evaluated model of the run: which arm, which iteration, where its eval lives."""

    label: str
    arm: str
    iteration: int
    model_id: str
    eval_dir: str
    optimizer_steps: int


class EvolveResult(BaseModel):
    out_dir: str
    models: list[ModelRecord]
    report_html: str | None = None
    report_md: str | None = None


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


class _Stages:
    """Run-once stages under ``out``; ``stage.json`` marks a stage done."""

    def __init__(self, out: Path, console: Console) -> None:
        self.out = out
        self.console = console

    def run(
        self,
        name: str,
        fn: Callable[[Path], dict[str, Any]],
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        folder = self.out / name
        marker = folder / "stage.json"
        if marker.is_file():
            record = StageRecord.model_validate_json(marker.read_text())
            self.console.print(f"[dim]✓ {name} (done, {record.seconds:.0f} s)[/]")
            return record.result
        if fresh and folder.exists():
            # A half-built dataset or model is not resumable: rebuild it from its inputs.
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        result = fn(folder)
        record = StageRecord(stage=name, seconds=time.perf_counter() - t0, result=result)
        _atomic_json(marker, record.model_dump(mode="json"))
        return result


# ---- suites --------------------------------------------------------------------------------


def eval_suite_file(config: EvolveConfig, out: Path) -> tuple[Path, list[Task]]:
    """One suite holding every configured eval suite's entries (filtered to ``eval_envs``)."""
    from palaestra.eval import get_suite, suite_tasks

    entries: list[dict[str, Any]] = []
    ids: list[str] = []
    for sid in config.eval_suites:
        suite = get_suite(sid)
        ids.append(suite.id)
        for entry in suite.entries:
            if config.eval_envs is not None and entry.env not in config.eval_envs:
                continue
            e = entry.model_dump(mode="json", exclude_defaults=True)
            e["group"] = entry.resolved_group
            if config.env_params.get(entry.env):
                e["params"] = {**entry.params, **config.env_params[entry.env]}
            if config.eval_difficulties is not None:
                levels = config.eval_difficulties
                e["difficulty"] = levels[0] if len(levels) == 1 else list(levels)
            if config.eval_n is not None:
                e.pop("seeds", None)
                e.pop("start", None)
                e["n"] = config.eval_n
            entries.append(e)
    if not entries:
        raise ValueError(
            f"eval_envs {config.eval_envs} leaves no task of the suites {config.eval_suites}"
        )
    path = out / "eval-suite.yaml"
    doc = {
        "id": "evolve-eval-v1",
        "description": "The evaluation panel of this evolve run: " + ", ".join(ids),
        "entries": entries,
    }
    text = yaml.safe_dump(doc, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path, [st.task for st in suite_tasks(get_suite(path))]


def train_suite_file(folder: Path, name: str, tasks: list[Task]) -> Path:
    """A suite file pinning ``tasks`` (for the rollout of one iteration)."""
    entries: list[dict[str, Any]] = []
    cells: dict[tuple[str, str, str], list[Task]] = {}
    for t in tasks:
        cells.setdefault((t.env_id, t.difficulty, json.dumps(t.params, sort_keys=True)), []).append(
            t
        )
    for (env, difficulty, _), ts in cells.items():
        entry: dict[str, Any] = {
            "env": env,
            "split": "train",
            "seeds": [t.seed for t in ts],
            "difficulty": difficulty,
            "group": "train",
        }
        if ts[0].params:
            entry["params"] = ts[0].params
        entries.append(entry)
    path = folder / "tasks.yaml"
    doc = {
        "id": f"{name}-v1",
        "description": "Training tasks of one iteration.",
        "entries": entries,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def perturbed_suite_file(folder: Path, name: str, suite: Path, perturbations: list[str]) -> Path:
    """A copy of the suite file ``suite`` with ``perturbations`` on every entry."""
    doc = yaml.safe_load(suite.read_text())
    doc["id"] = f"{name}-v1"
    for entry in doc["entries"]:
        entry["perturbations"] = perturbations
    path = folder / "tasks.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ---- the loop ------------------------------------------------------------------------------


def _eval_config(config: EvolveConfig, **kw: Any) -> Any:
    from palaestra.eval import EvalConfig

    base: dict[str, Any] = {
        "max_turns": config.max_turns,
        "max_new_tokens": config.max_new_tokens,
        "prompt": config.prompt,
        "concurrency": config.concurrency,
        "seed": config.seed,
    }
    base.update(kw)
    return EvalConfig(**base)


def _run_tasks(
    config: EvolveConfig,
    folder: Path,
    suite: Path,
    *,
    agent: str,
    model: str | None,
    temperature: float,
    progress: bool,
    console: Console,
    name: str = "run",
) -> dict[str, Any]:
    from palaestra.eval import evaluate

    cfg = _eval_config(
        config,
        suite=str(suite),
        agent=agent,
        model=model,
        temperature=temperature,
        epochs=1,
    )
    stats = evaluate(cfg, folder / name, console=console, progress=progress)
    return {"run": str(folder / name), "outcomes": dict(stats.outcomes)}


def _episodes(run_dir: str | Path) -> list[Any]:
    from palaestra.trajectory import RunStore

    with RunStore(Path(run_dir), readonly=True) as store:
        return list(store.episodes())


def _heldin_success(run_dir: str | Path) -> float | None:
    """Success of the held-in group of an evaluation run, as the report computes it."""
    from palaestra.eval import compute_metrics

    group = compute_metrics(_episodes(run_dir), n_boot=0).by_group.get("heldin")
    return group.success.value if group is not None else None


def _mix(parts: list[tuple[str, Any]], seed: int) -> tuple[Any, dict[str, int]]:
    from datasets import concatenate_datasets

    kept = [(name, ds.select_columns(["messages"])) for name, ds in parts if len(ds)]
    if not kept:
        raise ValueError("the iteration built no training rows (no successes, no errors)")
    counts = {name: len(ds) for name, ds in kept}
    return concatenate_datasets([ds for _, ds in kept]).shuffle(seed=seed), counts


def _full_model(meta: Any, folder: Path) -> str:
    """A model id the next stage can continue training from (LoRA is merged first)."""
    from palaestra.train import merge_adapter

    if meta.method == "full":
        return str(meta.load_id)
    merged = folder / "merged"
    merge_adapter(folder / "model", merged)
    return f"hf/{merged}"


def _train(
    model_id: str,
    data: Any,
    train_cfg: Any,
    folder: Path,
    *,
    dpo: bool = False,
) -> dict[str, Any]:
    from palaestra.train import train_dpo, train_sft

    fn = train_dpo if dpo else train_sft
    meta = fn(model_id, data, train_cfg, folder / "model")
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    steps = max([int(h.get("step", 0)) for h in meta.log_history] + [0])
    return {
        "model": _full_model(meta, folder),
        "rows": meta.dataset_rows,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "optimizer_steps": steps or train_cfg.max_steps,
    }


def evolve(
    config: EvolveConfig,
    out_dir: str | Path,
    *,
    console: Console | None = None,
    progress: bool = True,
) -> EvolveResult:
    """Run (or resume) the loop of ``config`` into ``out_dir``; write the report at the end."""
    from palaestra.data import build_pairs, build_refine, build_refine_synthetic, build_sft, save
    from palaestra.evolve._report import base_check, write_evolve_report

    check_evolve_config(config)  # before any folder or stage: a bad config leaves nothing behind
    console = console or Console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, config)
    stages = _Stages(out, console)
    suite_path, eval_tasks = eval_suite_file(config, out)
    seed = config.seed

    # ---- iteration 0: expert demonstrations → base SFT (AgentTuning's baseline) -------------
    def demo_tasks() -> list[Task]:
        from palaestra.env import tasks

        out_tasks: list[Task] = []
        for env in config.envs:
            params: dict[str, Any] = dict(config.env_params.get(env, {}))
            out_tasks += tasks(
                env, "train", n=config.demos, difficulty=config.difficulties, **params
            )
        check_no_leak(out_tasks, eval_tasks)
        return out_tasks

    def run_stage(
        stage: str,
        suite: Callable[[Path], Path],
        *,
        agent: str,
        model: str | None = None,
        temperature: float = 0.0,
        name: str = "run",
    ) -> dict[str, Any]:
        """A resumable stage that runs ``agent`` on the tasks of ``suite(stage folder)``."""
        return stages.run(
            stage,
            lambda f: _run_tasks(
                config,
                f,
                suite(f),
                agent=agent,
                model=model,
                temperature=temperature,
                progress=progress,
                console=console,
                name=name,
            ),
        )

    demos = run_stage(
        "iter-0/demos", lambda f: train_suite_file(f, "demos", demo_tasks()), agent="expert"
    )

    def base_data(f: Path) -> dict[str, Any]:
        ds, card = build_sft([demos["run"]])
        if not len(ds):
            raise ValueError(
                f"the expert solved none of the demonstration tasks ({demos['outcomes']}) "
                f"within max_turns={config.max_turns}; raise max_turns in the config"
            )
        save(ds, card, f / "data")
        return {"data": str(f / "data"), "rows": len(ds)}

    base_ds = stages.run("iter-0/data", base_data, fresh=True)
    base = stages.run(
        "iter-0/train",
        lambda f: _train(config.model, base_ds["data"], config.base_sft, f),
        fresh=True,
    )
    models: list[ModelRecord] = []

    def evaluate_model(name: str, model_id: str) -> dict[str, Any]:
        return run_stage(
            f"evals/{name}", lambda f: suite_path, agent="react", model=model_id, name=name
        )

    ev = evaluate_model("base", base["model"])
    models.append(
        ModelRecord(
            label="base",
            arm="base",
            iteration=0,
            model_id=base["model"],
            eval_dir=ev["run"],
            optimizer_steps=base["optimizer_steps"],
        )
    )
    if config.iterations:
        # Said before iterating, so a user can stop and fix the base instead of waiting
        # for a 0%-vs-0% comparison; the report repeats it.
        weak = base_check(_heldin_success(ev["run"]), config.base_floor)
        if weak is not None:
            console.print(f"[bold yellow]base check:[/] {weak}")

    # ---- iterations ---------------------------------------------------------------------------
    current = {arm: base["model"] for arm in ARMS}
    steps = {arm: base["optimizer_steps"] for arm in ARMS}
    cells: list[Cell] = initial_cells(config.envs, config.difficulties, config.env_params)
    for cell in cells:
        cell.share = 1.0
    arms = ARMS if config.control else ARMS[:1]
    for it in range(1, config.iterations + 1):
        prefix = f"iter-{it}"

        def plan_stage(f: Path, it: int = it, cells: list[Cell] = cells) -> dict[str, Any]:
            train_tasks, plan = propose(it, cells, config.rollouts, eval_tasks, seed=seed)
            suite = train_suite_file(f, f"train-iter{it}", train_tasks)
            _atomic_json(f / "curriculum.json", plan.model_dump(mode="json"))
            return {"suite": str(suite), "plan": plan.model_dump(mode="json")}

        plan = stages.run(f"{prefix}/curriculum", plan_stage, fresh=True)
        train_suite = Path(plan["suite"])

        # expert demonstrations of this iteration's tasks (both arms' expert data)
        expert = run_stage(f"{prefix}/expert", lambda f, s=train_suite: s, agent="expert")
        recovery: dict[str, Any] | None = None
        if config.data.expert_recovery:
            # the same tasks, with one wrong action carried out by the environment
            recovery = run_stage(
                f"{prefix}/improve/expert-recovery",
                lambda f, s=train_suite, it=it: perturbed_suite_file(
                    f, f"recovery-iter{it}", s, ["inject_mistake"]
                ),
                agent="expert",
            )
        explore = run_stage(
            f"{prefix}/improve/rollouts",
            lambda f, s=train_suite: s,
            agent=config.agent,
            model=current["improve"],
            temperature=config.temperature,
        )

        def improve_data(
            f: Path,
            explore: dict[str, Any] = explore,
            expert: dict[str, Any] = expert,
            recovery: dict[str, Any] | None = recovery,
            it: int = it,
        ) -> dict[str, Any]:
            parts: list[tuple[str, Any]] = []
            if config.data.expert:
                parts.append(("expert", build_sft([expert["run"]])[0]))
            if config.data.refine:
                parts.append(("refine", build_refine([explore["run"]])[0]))
            if recovery is not None:
                parts.append(("expert_recovery", build_sft([recovery["run"]])[0]))
            if config.data.refine_synthetic:
                ds, _ = build_refine_synthetic(
                    [explore["run"]], per_episode=config.data.refine_synthetic
                )
                parts.append(("refine_synthetic", ds))
            if config.data.self_sft:
                parts.append(("self", build_sft([explore["run"]])[0]))
            if config.data.reflect:
                from palaestra.data import build_reflect

                parts.append(("reflect", build_reflect([explore["run"]])[0]))
            ds, counts = _mix(parts, seed + it)
            from palaestra.data import DatasetCard

            card = DatasetCard(
                builder="evolve",
                sources=[explore["run"], expert["run"]],
                parameters={"iteration": it, "arm": "improve", **config.data.model_dump()},
                counts=counts,
            )
            save(ds, card, f / "data")
            result: dict[str, Any] = {"data": str(f / "data"), "rows": len(ds), "counts": counts}
            if config.data.pairs:
                pairs, pcard = build_pairs([explore["run"]])
                save(pairs, pcard, f / "pairs")
                result["pairs"] = str(f / "pairs")
                result["pair_rows"] = len(pairs)
            return result

        def control_data(f: Path, expert: dict[str, Any] = expert) -> dict[str, Any]:
            ds, card = build_sft([expert["run"]])
            save(ds, card, f / "data")
            return {"data": str(f / "data"), "rows": len(ds), "counts": {"expert": len(ds)}}

        builders = {"improve": improve_data, "control": control_data}
        for arm in arms:
            data = stages.run(f"{prefix}/{arm}/data", builders[arm], fresh=True)
            trained = stages.run(
                f"{prefix}/{arm}/train",
                lambda f, arm=arm, data=data: _train(current[arm], data["data"], config.train, f),
                fresh=True,
            )
            current[arm] = trained["model"]
            steps[arm] += trained["optimizer_steps"]
            if arm == "improve" and config.dpo is not None and "pairs" in data:
                dpo_cfg = config.dpo
                tuned = stages.run(
                    f"{prefix}/{arm}/dpo",
                    lambda f, data=data, dpo_cfg=dpo_cfg: _train(
                        current["improve"], data["pairs"], dpo_cfg, f, dpo=True
                    ),
                    fresh=True,
                )
                current[arm] = tuned["model"]
                steps[arm] += tuned["optimizer_steps"]
            label = f"iter{it}-{arm}"
            ev = evaluate_model(label, current[arm])
            models.append(
                ModelRecord(
                    label=label,
                    arm=arm,
                    iteration=it,
                    model_id=current[arm],
                    eval_dir=ev["run"],
                    optimizer_steps=steps[arm],
                )
            )
        # the curriculum reads the improving arm's exploration of this iteration
        assessed = assess(
            [Cell.model_validate(c) for c in plan["plan"]["cells"]], _episodes(explore["run"])
        )
        cells, notes = (
            next_cells(assessed, config.curriculum)
            if config.curriculum.enabled
            else (
                assessed,
                [],
            )
        )
        for note in notes:
            console.print(f"[cyan]curriculum:[/] {note}")
        _atomic_json(
            out / prefix / "assessment.json",
            Plan(iteration=it, cells=cells, tasks=plan["plan"]["tasks"], notes=notes).model_dump(
                mode="json"
            ),
        )

    _atomic_json(out / "models.json", [m.model_dump(mode="json") for m in models])
    files = write_evolve_report(config, models, out / "report", console=console)
    return EvolveResult(
        out_dir=str(out),
        models=models,
        report_html=str(files[0]),
        report_md=str(files[1]),
    )


def _check_resume(out: Path, config: EvolveConfig) -> None:
    path = out / "evolve.json"
    if path.is_file():
        old = EvolveConfig.model_validate_json(path.read_text())
        refuse_changes(out, "an evolve run", config_changes(old, config, RESUMABLE))
        if old.iterations != config.iterations:
            _atomic_json(path, config.model_dump(mode="json"))
        return
    _atomic_json(path, config.model_dump(mode="json"))
