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

With an ``rl:`` section the improving arm is the **rl arm**: after its SFT step
(``rl.after_sft``) or instead of it, it takes online RL steps (``train_rl``: GRPO or
RLOO) on the iteration's curriculum tasks (WebRL's learning-zone selection,
:mod:`._rl_arm`); the control arm trains the same number of optimizer steps of
SFT on expert data (:func:`~._config.control_steps`); the RL episodes feed the next
curriculum beside the exploration rollouts.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Field, computed_field
from rich.console import Console

from palaestra._config import config_changes, refuse_changes
from palaestra.env import Task
from palaestra.evolve._config import EvolveConfig, check_evolve_config, control_steps
from palaestra.evolve._curriculum import (
    Cell,
    Plan,
    assess,
    check_no_leak,
    initial_cells,
    next_cells,
    propose,
)
from palaestra.evolve._rl_arm import (
    RLStats,
    env_factory,
    logged_tokens,
    rl_run_config,
    rl_stats,
    rl_tasks,
)
from palaestra.evolve._safety import GateVerdict

log = logging.getLogger("palaestra.evolve")

#: The improving arm and the control; with an ``rl:`` section the improving arm is ``rl``.
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
    tokens: int | None = Field(
        default=None, description="Tokens its training processed in this iteration (SFT + RL)."
    )
    rl: RLStats | None = Field(default=None, description="Its RL steps in this iteration.")
    safety_dir: str | None = Field(default=None, description="Its safety-suite evaluation.")
    safety: GateVerdict | None = Field(default=None, description="The safety gate on this arm.")

    @computed_field
    @property
    def safety_passed(self) -> bool | None:
        """The safety gate's verdict (None: the base, or no gate); stored in models.json."""
        return None if self.safety is None else self.safety.passed


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
    path = _write_suite(
        out / "eval-suite.yaml",
        "evolve-eval-v1",
        "The evaluation panel of this evolve run: " + ", ".join(ids),
        entries,
    )
    return path, [st.task for st in suite_tasks(get_suite(path))]


def _write_suite(path: Path, suite_id: str, description: str, entries: list[Any]) -> Path:
    """Write a suite file; an unchanged file is left as it is (resumed runs)."""
    doc = {"id": suite_id, "description": description, "entries": entries}
    text = yaml.safe_dump(doc, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def safety_suite_file(config: EvolveConfig, out: Path) -> Path:
    """One suite holding the safety gate's suites (every model is evaluated on it)."""
    from palaestra.eval import get_suite

    assert config.safety is not None
    entries: list[dict[str, Any]] = []
    for sid in config.safety.suites:
        suite = get_suite(sid)
        for entry in suite.entries:
            e = entry.model_dump(mode="json", exclude_defaults=True)
            e["group"] = entry.resolved_group
            entries.append(e)
    return _write_suite(
        out / "safety-suite.yaml",
        "evolve-safety-v1",
        "The safety panel of this evolve run: " + ", ".join(config.safety.suites),
        entries,
    )


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
    return _trained(meta, folder, train_cfg.max_steps, meta.dataset_rows).model_dump()


def _trained(meta: Any, folder: Path, max_steps: int, rows: int) -> TrainResult:
    """What a training stage reports: the model to go on from, loss, steps and tokens."""
    losses = [h["loss"] for h in meta.log_history if "loss" in h]
    steps = max([int(h.get("step", 0)) for h in meta.log_history] + [0])
    return TrainResult(
        model=_full_model(meta, folder),
        rows=rows,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        optimizer_steps=steps or max_steps,
        tokens=logged_tokens(meta.log_history),
    )


# ---- stage results --------------------------------------------------------------------------
# What each stage returns, typed; ``stage.json`` stores it, so a resumed run reads it back.


class RunResult(BaseModel):
    """A rollout or evaluation stage: its run folder and outcome counts."""

    run: str
    outcomes: dict[str, int] = Field(default_factory=dict[str, int])


class DataResult(BaseModel):
    """A dataset stage: the SFT data folder (and DPO pairs when built), rows per source."""

    data: str
    rows: int
    counts: dict[str, int] = Field(default_factory=dict[str, int])
    pairs: str | None = None
    pair_rows: int | None = None


class TrainResult(BaseModel):
    """A training stage: the model the next stage continues from, and what training did."""

    model: str
    rows: int
    loss_first: float | None = None
    loss_last: float | None = None
    optimizer_steps: int
    tokens: int | None = Field(default=None, description="Tokens processed (TRL's num_tokens).")


class RLResult(TrainResult):
    """An RL stage: a training stage plus its episode store and what the RL steps did."""

    episodes: str
    stats: RLStats


@dataclass(frozen=True)
class ArmState:
    """An arm between stages: its model, optimizer steps so far, this iteration's training."""

    model: str
    steps: int
    tokens: int | None = None
    rl: RLStats | None = None

    def then(self, result: TrainResult, rl: RLStats | None = None) -> ArmState:
        """The arm after another training stage of the same iteration."""
        tokens = (self.tokens or 0) + (result.tokens or 0)
        return ArmState(
            result.model, self.steps + result.optimizer_steps, tokens or None, rl or self.rl
        )


class PlanResult(BaseModel):
    """A curriculum stage: the iteration's training tasks (a suite file) and the plan."""

    suite: str
    plan: dict[str, Any]


R = TypeVar("R", bound=BaseModel)


@dataclass
class Loop:
    """What every stage reads: the config, the run folder, the evaluation panels, the console."""

    config: EvolveConfig
    out: Path
    stages: _Stages
    console: Console
    progress: bool
    eval_suite: Path
    eval_tasks: list[Task]
    safety_suite: Path | None

    @property
    def improving(self) -> str:
        """The improving arm's name: ``rl`` with an ``rl:`` section, else ``improve``."""
        return "improve" if self.config.rl is None else "rl"

    @property
    def improving_sft(self) -> bool:
        """Whether the improving arm explores and takes an SFT step (not with RL instead)."""
        return self.config.rl is None or self.config.rl.after_sft

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.improving, "control") if self.config.control else (self.improving,)

    def stage(
        self, name: str, result: type[R], fn: Callable[[Path], R], *, fresh: bool = False
    ) -> R:
        """Run ``fn(folder)`` once as stage ``name``; later calls read its ``stage.json``."""
        done = self.stages.run(name, lambda f: fn(f).model_dump(mode="json"), fresh=fresh)
        return result.model_validate(done)

    def run_agent(
        self,
        name: str,
        suite: Callable[[Path], Path],
        *,
        agent: str,
        model: str | None = None,
        temperature: float = 0.0,
        run: str = "run",
    ) -> RunResult:
        """A stage that runs ``agent`` on the tasks of ``suite(stage folder)``."""
        return self.stage(
            name,
            RunResult,
            lambda f: RunResult.model_validate(
                _run_tasks(
                    self.config,
                    f,
                    suite(f),
                    agent=agent,
                    model=model,
                    temperature=temperature,
                    progress=self.progress,
                    console=self.console,
                    name=run,
                )
            ),
        )


def open_loop(
    config: EvolveConfig, out_dir: str | Path, console: Console | None, progress: bool
) -> Loop:
    """Check the config, create (or resume) the run folder and write the evaluation panels."""
    check_evolve_config(config)  # before any folder or stage: a bad config leaves nothing behind
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, config)
    console = console or Console()
    suite, eval_tasks = eval_suite_file(config, out)
    safety = safety_suite_file(config, out) if config.safety else None
    return Loop(config, out, _Stages(out, console), console, progress, suite, eval_tasks, safety)


# ---- the stages, in the order the loop runs them -----------------------------------------------


def expert_demos(loop: Loop) -> RunResult:
    """Iteration 0: the expert on ``demos`` fresh training tasks per environment."""

    def tasks_file(f: Path) -> Path:
        from palaestra.env import tasks

        config, out_tasks = loop.config, list[Task]()
        for env in config.envs:
            params: dict[str, Any] = dict(config.env_params.get(env, {}))
            out_tasks += tasks(
                env, "train", n=config.demos, difficulty=config.difficulties, **params
            )
        check_no_leak(out_tasks, loop.eval_tasks)
        return train_suite_file(f, "demos", out_tasks)

    return loop.run_agent("iter-0/demos", tasks_file, agent="expert")


def base_data(loop: Loop, demos: RunResult) -> DataResult:
    """The expert's successful demonstrations as SFT data (AgentTuning's baseline)."""
    from palaestra.data import build_sft, save

    def build(f: Path) -> DataResult:
        ds, card = build_sft([demos.run])
        if not len(ds):
            raise ValueError(
                f"the expert solved none of the demonstration tasks ({demos.outcomes}) "
                f"within max_turns={loop.config.max_turns}; raise max_turns in the config"
            )
        save(ds, card, f / "data")
        return DataResult(data=str(f / "data"), rows=len(ds), counts={"expert": len(ds)})

    return loop.stage("iter-0/data", DataResult, build, fresh=True)


def train(
    loop: Loop, name: str, model: str, data: str, config: Any, *, dpo: bool = False
) -> TrainResult:
    """SFT (or DPO on pairs) of ``model`` on ``data``; a half-trained model is retrained."""
    return loop.stage(
        name,
        TrainResult,
        lambda f: TrainResult.model_validate(_train(model, data, config, f, dpo=dpo)),
        fresh=True,
    )


def evaluate_model(
    loop: Loop,
    label: str,
    arm: str,
    iteration: int,
    model_id: str,
    steps: int,
    *,
    tokens: int | None = None,
    rl: RLStats | None = None,
) -> ModelRecord:
    """The model on the evaluation panel (and the safety panel when the gate is on)."""
    ev = loop.run_agent(
        f"evals/{label}", lambda f: loop.eval_suite, agent="react", model=model_id, run=label
    )
    safety_dir: str | None = None
    if loop.safety_suite is not None:
        suite = loop.safety_suite
        safety_dir = loop.run_agent(
            f"evals/{label}-safety",
            lambda f: suite,
            agent="react",
            model=model_id,
            run=f"{label}-safety",
        ).run
    return ModelRecord(
        label=label,
        arm=arm,
        iteration=iteration,
        model_id=model_id,
        eval_dir=ev.run,
        optimizer_steps=steps,
        tokens=tokens,
        rl=rl,
        safety_dir=safety_dir,
    )


def evaluate_arm(loop: Loop, it: int, arm: str, state: ArmState) -> ModelRecord:
    """An arm's model after iteration ``it`` on the panels, with what its training did."""
    return evaluate_model(
        loop, f"iter{it}-{arm}", arm, it, state.model, state.steps, tokens=state.tokens, rl=state.rl
    )


def warn_if_weak(loop: Loop, base: ModelRecord) -> None:
    """Say before iterating when the base is too weak for improvement data to show anything."""
    from palaestra.evolve._report import base_check

    if loop.config.iterations:
        # said now, so a user can stop and fix the base instead of waiting for a
        # 0%-vs-0% comparison; the report repeats it
        weak = base_check(_heldin_success(base.eval_dir), loop.config.base_floor)
        if weak is not None:
            loop.console.print(f"[bold yellow]base check:[/] {weak}")


def plan_iteration(loop: Loop, it: int, cells: list[Cell]) -> PlanResult:
    """The curriculum's training tasks of iteration ``it`` (never an evaluation task)."""

    def plan(f: Path) -> PlanResult:
        tasks, p = propose(it, cells, loop.config.rollouts, loop.eval_tasks, seed=loop.config.seed)
        suite = train_suite_file(f, f"train-iter{it}", tasks)
        _atomic_json(f / "curriculum.json", p.model_dump(mode="json"))
        return PlanResult(suite=str(suite), plan=p.model_dump(mode="json"))

    return loop.stage(f"iter-{it}/curriculum", PlanResult, plan, fresh=True)


def expert_rollouts(loop: Loop, it: int, plan: PlanResult) -> RunResult:
    """The expert on the iteration's tasks: both arms' expert demonstrations."""
    return loop.run_agent(f"iter-{it}/expert", lambda f: Path(plan.suite), agent="expert")


def expert_recovery(loop: Loop, it: int, plan: PlanResult) -> RunResult:
    """The same tasks with one wrong action carried out by the environment (inject_mistake)."""
    return loop.run_agent(
        f"iter-{it}/{loop.improving}/expert-recovery",
        lambda f: perturbed_suite_file(
            f, f"recovery-iter{it}", Path(plan.suite), ["inject_mistake"]
        ),
        agent="expert",
    )


def explore(loop: Loop, it: int, plan: PlanResult, model: str) -> RunResult:
    """The improving arm's model samples the iteration's tasks (AgentEvol's exploration)."""
    return loop.run_agent(
        f"iter-{it}/{loop.improving}/rollouts",
        lambda f: Path(plan.suite),
        agent=loop.config.agent,
        model=model,
        temperature=loop.config.temperature,
    )


def improve_data(
    loop: Loop, it: int, explored: RunResult, expert: RunResult, recovery: RunResult | None
) -> DataResult:
    """The improving arm's mix: expert data, refinement of its own mistakes, and the rest
    that ``data:`` turns on; DPO pairs from its rollouts when ``data.pairs``."""
    from palaestra.data import (
        DatasetCard,
        build_pairs,
        build_refine,
        build_refine_synthetic,
        build_reflect,
        build_sft,
        save,
    )

    mix = loop.config.data

    def build(f: Path) -> DataResult:
        parts: list[tuple[str, Any]] = []
        if mix.expert:
            parts.append(("expert", build_sft([expert.run])[0]))
        if mix.refine:
            parts.append(("refine", build_refine([explored.run])[0]))
        if recovery is not None:
            parts.append(("expert_recovery", build_sft([recovery.run])[0]))
        if mix.refine_synthetic:
            ds, _ = build_refine_synthetic([explored.run], per_episode=mix.refine_synthetic)
            parts.append(("refine_synthetic", ds))
        if mix.self_sft:
            parts.append(("self", build_sft([explored.run])[0]))
        if mix.reflect:
            parts.append(("reflect", build_reflect([explored.run])[0]))
        ds, counts = _mix(parts, loop.config.seed + it)
        card = DatasetCard(
            builder="evolve",
            sources=[explored.run, expert.run],
            parameters={"iteration": it, "arm": loop.improving, **mix.model_dump()},
            counts=counts,
        )
        save(ds, card, f / "data")
        result = DataResult(data=str(f / "data"), rows=len(ds), counts=counts)
        if mix.pairs:
            pairs, pcard = build_pairs([explored.run])
            save(pairs, pcard, f / "pairs")
            result.pairs, result.pair_rows = str(f / "pairs"), len(pairs)
        return result

    return loop.stage(f"iter-{it}/{loop.improving}/data", DataResult, build, fresh=True)


def control_data(loop: Loop, it: int, expert: RunResult) -> DataResult:
    """The control arm: expert demonstrations of the same tasks only."""
    from palaestra.data import build_sft, save

    def build(f: Path) -> DataResult:
        ds, card = build_sft([expert.run])
        save(ds, card, f / "data")
        return DataResult(data=str(f / "data"), rows=len(ds), counts={"expert": len(ds)})

    return loop.stage(f"iter-{it}/control/data", DataResult, build, fresh=True)


def arm_data(
    loop: Loop,
    it: int,
    arm: str,
    expert: RunResult,
    explored: RunResult | None,
    recovery: RunResult | None,
) -> DataResult | None:
    """The arm's SFT data of iteration ``it``; ``None`` for an rl arm with RL instead of SFT."""
    if arm == "control":
        return control_data(loop, it, expert)
    if explored is None:
        return None
    return improve_data(loop, it, explored, expert, recovery)


def train_arm(loop: Loop, it: int, arm: str, start: ArmState, data: DataResult | None) -> ArmState:
    """SFT of the arm's model on its data, then DPO when configured.

    The control arm trains :func:`~._config.control_steps` steps (the improving arm's
    SFT + RL budget); no data (RL instead of SFT) is no training.
    """
    state = ArmState(start.model, start.steps)
    if data is None:
        return state
    config = loop.config.train
    if arm == "control":
        config = config.model_copy(update={"max_steps": control_steps(loop.config)})
    state = state.then(train(loop, f"iter-{it}/{arm}/train", state.model, data.data, config))
    if arm == loop.improving and loop.config.dpo is not None and data.pairs is not None:
        dpo = train(
            loop, f"iter-{it}/{arm}/dpo", state.model, data.pairs, loop.config.dpo, dpo=True
        )
        state = state.then(dpo)
    return state


def rl_arm(loop: Loop, it: int, plan: PlanResult, model: str) -> RLResult:
    """Online RL (``train_rl``) of ``model`` on the iteration's curriculum tasks.

    A half-trained RL stage continues from its last ``train_rl`` checkpoint (the folder
    is kept; episodes played after that checkpoint stay stored, marked
    ``rl_discarded``, and count nowhere); its episodes (``<stage>/model/episodes``)
    feed the next curriculum.
    """
    from palaestra.train import train_rl

    def run(f: Path) -> RLResult:
        cells = [Cell.model_validate(c) for c in plan.plan["cells"]]
        tasks = rl_tasks(Path(plan.suite), cells, loop.eval_tasks)
        config = rl_run_config(loop.config, it, tasks)
        meta = train_rl(model, config, f / "model", envs=env_factory(tasks), task_list=tasks)
        episodes = f / "model" / "episodes"
        trained = _trained(meta, f, config.max_steps, len(tasks))
        played = _kept_episodes(episodes)
        stats = rl_stats(
            config.algorithm, meta.log_history, played, len(tasks), trained.optimizer_steps
        )
        return RLResult(**trained.model_dump(), episodes=str(episodes), stats=stats)

    # Not fresh: a rerun resumes train_rl from its checkpoint in the same folder.
    return loop.stage(f"iter-{it}/rl/rl", RLResult, run)


def _kept_episodes(run_dir: str | Path) -> list[Any]:
    """A run's episodes without those a resumed RL run discarded (played after its checkpoint)."""
    return [ep for ep in _episodes(run_dir) if not ep.metadata.get("rl_discarded")]


def next_curriculum(
    loop: Loop, it: int, plan: PlanResult, explored: RunResult | None, rl: RLResult | None
) -> list[Cell]:
    """The next iteration's cells, from how the improving arm did on this one's tasks:
    its exploration rollouts and, for the rl arm, every episode its RL steps played."""
    runs = ([explored.run] if explored else []) + ([rl.episodes] if rl else [])
    played = [ep for run in runs for ep in _kept_episodes(run)]
    assessed = assess([Cell.model_validate(c) for c in plan.plan["cells"]], played)
    config = loop.config.curriculum
    cells, notes = next_cells(assessed, config) if config.enabled else (assessed, [])
    for note in notes:
        loop.console.print(f"[cyan]curriculum:[/] {note}")
    _atomic_json(
        loop.out / f"iter-{it}" / "assessment.json",
        Plan(iteration=it, cells=cells, tasks=plan.plan["tasks"], notes=notes).model_dump(
            mode="json"
        ),
    )
    return cells


def gate(loop: Loop, base: ModelRecord, model: ModelRecord) -> ModelRecord:
    """The safety gate on one arm's model against the base; says it when the arm fails."""
    from palaestra.evolve._safety import judge_arm

    if loop.config.safety is None or base.safety_dir is None or model.safety_dir is None:
        return model
    verdict = judge_arm(
        _episodes(base.safety_dir), _episodes(model.safety_dir), loop.config.safety, model.label
    )
    if not verdict.passed:
        loop.console.print(
            f"[bold red]safety gate: {model.label} FAILED[/] — " + "; ".join(verdict.reasons)
        )
    return model.model_copy(update={"safety": verdict})


# ---- the loop ------------------------------------------------------------------------------


def evolve(
    config: EvolveConfig,
    out_dir: str | Path,
    *,
    console: Console | None = None,
    progress: bool = True,
) -> EvolveResult:
    """Run (or resume) the loop of ``config`` into ``out_dir``; write the report at the end.

    Read top to bottom: each line is a stage (a function above, resumable by its
    ``stage.json``); change one stage without reading the others.
    """
    from palaestra.evolve._report import write_evolve_report

    loop = open_loop(config, out_dir, console, progress)

    # iteration 0: expert demonstrations -> base SFT -> evaluation (AgentTuning's baseline)
    demos = expert_demos(loop)
    base = train(loop, "iter-0/train", config.model, base_data(loop, demos).data, config.base_sft)
    base_model = evaluate_model(loop, "base", "base", 0, base.model, base.optimizer_steps)
    warn_if_weak(loop, base_model)
    models = [base_model]

    # iterations: explore -> learn (AgentEvol), an improving arm beside a control arm
    # (with an rl section the improving arm is the rl arm: SFT then RL, or RL instead)
    current = dict.fromkeys(loop.arms, ArmState(base.model, base.optimizer_steps))
    cells = initial_cells(config.envs, config.difficulties, config.env_params)
    for cell in cells:
        cell.share = 1.0
    for it in range(1, config.iterations + 1):
        plan = plan_iteration(loop, it, cells)
        expert = expert_rollouts(loop, it, plan)
        sft = loop.improving_sft  # with RL instead of SFT: no exploration, no SFT data
        recovery = expert_recovery(loop, it, plan) if sft and config.data.expert_recovery else None
        explored = explore(loop, it, plan, current[loop.improving].model) if sft else None
        rl: RLResult | None = None
        for arm in loop.arms:
            data = arm_data(loop, it, arm, expert, explored, recovery)
            state = train_arm(loop, it, arm, current[arm], data)
            if arm == "rl":
                rl = rl_arm(loop, it, plan, state.model)
                state = state.then(rl, rl.stats)
            current[arm] = state
            models.append(gate(loop, base_model, evaluate_arm(loop, it, arm, state)))
        cells = next_curriculum(loop, it, plan, explored, rl)

    _atomic_json(loop.out / "models.json", [m.model_dump(mode="json") for m in models])
    html, md = write_evolve_report(config, models, loop.out / "report", console=loop.console)
    return EvolveResult(
        out_dir=str(loop.out), models=models, report_html=str(html), report_md=str(md)
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
