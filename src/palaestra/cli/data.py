"""``palaestra data sft|refine|reflect|pairs RUN_DIR... --out DIR``: build training datasets from runs.

Each command writes a ``datasets`` folder (``load_from_disk``) with ``card.json``
and ``README.md`` (sources, parameters, counts, token statistics) beside it.
Each command's settings are a small config (below), so they come from flags,
a ``--config`` YAML file or the defaults, like every other command's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from palaestra.cli._common import console, fail
from palaestra.cli._options import CONFIG_OPTION, MODEL_DECLS, config_flags

data_app = typer.Typer(help="Build SFT, refinement and preference datasets from run directories.")

RunDirs = typer.Argument(..., help="Run directories (from `palaestra rollout`).")
Out = typer.Option(..., "--out", "-o", help="Output dataset folder.")
_TOKENIZER = "Model id whose tokenizer counts tokens (default: words)."


class SFTData(BaseModel):
    """``palaestra data sft``: successful trajectories, loss on the agent's turns."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=1.0, description="Keep episodes with score >= this.")
    dedup: bool = Field(default=True, description="One trajectory per task (the shortest).")
    mix_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="Share of general chat rows (AgentTuning)."
    )
    general: str | None = Field(
        default=None,
        description="General chat: JSONL or datasets folder (default: the shipped set).",
    )
    reward: Literal["env", "orm"] = Field(
        default="env",
        description="Success from: env (the environment's score) or orm (orm_labels.jsonl "
        "written by `palaestra orm label`).",
    )
    tokenizer: str | None = Field(default=None, description=_TOKENIZER)


class RefineData(BaseModel):
    """``palaestra data refine``: AgentRefine data from the runs' erroneous turns."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(
        default="expert",
        description="expert (the environment's oracle) or a model id (openai/...).",
    )
    base_url: str | None = Field(default=None, description="Server URL for an openai/ teacher.")
    types: list[str] = Field(
        default_factory=list[str],
        description="Error types: invalid_action, format_error, loop, wrong_action "
        "(default: all; with synthetic: wrong_action, invalid_action, format_error).",
    )
    max_errors: int = Field(
        default=1, ge=1, description="Erroneous turns kept in context per sample."
    )
    continuation: Literal["expert", "teacher"] = Field(
        default="expert", description="Who finishes after the correction: expert or teacher."
    )
    correction: bool = Field(
        default=True,
        description="Off: keep the corrected turn without loss (ablation: errors in context, "
        "no correction).",
    )
    synthetic: bool = Field(
        default=False, description="Inject errors into successful trajectories instead (no model)."
    )
    per_episode: int = Field(default=1, ge=1, description="With synthetic: samples per trajectory.")
    seed: str = Field(default="refine", description="With synthetic: seed string.")
    tokenizer: str | None = Field(default=None, description=_TOKENIZER)


class PairsData(BaseModel):
    """``palaestra data pairs``: DPO pairs from the runs."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Literal["trajectory", "step", "tree"]] = Field(
        default_factory=lambda: ["trajectory", "step"],
        description="Pair kinds: trajectory, step and/or tree (tree reads search trees of "
        "search:* agents).",
    )
    threshold: float = Field(default=1.0, description="Success means score >= this.")
    max_per_task: int = Field(default=4, ge=1, description="Trajectory-level pairs per task.")
    min_margin: float = Field(default=0.5, description="Step-level: least value gap of a pair.")
    tree_margin: float = Field(default=0.1, description="Tree: least Q-value gap of a pair.")
    tokenizer: str | None = Field(default=None, description=_TOKENIZER)


class ReflectData(BaseModel):
    """``palaestra data reflect``: Agent-R revision data from search trees."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description="The actor model that names the first wrong step (default: the "
        "divergence step).",
    )
    base_url: str | None = Field(default=None, description="Server URL for an openai/ model.")
    max_per_tree: int = Field(default=2, ge=1, description="Revision samples per search tree.")
    tokenizer: str | None = Field(default=None, description=_TOKENIZER)


def _settings(cls: type[Any], config: Path | None, overrides: dict[str, Any], what: str) -> Any:
    from palaestra._config import load_config

    try:
        return load_config(cls, config, what, overrides)
    except ValueError as e:
        fail(str(e))


def _tokenizer(model_id: str | None) -> Any:
    if model_id is None:
        return None
    from palaestra.model import get_model

    tok = getattr(get_model(model_id), "tokenizer", None)
    if tok is None:
        fail(f"model {model_id!r} has no tokenizer; omit --tokenizer to count words")
    return tok


def _finish(ds: Any, card: Any, out: Path) -> None:
    from palaestra.data import save

    save(ds, card, out)
    counts = ", ".join(f"{k} {v}" for k, v in card.counts.items())
    console.print(f"[bold]{card.builder}[/]: {len(ds)} rows -> {out}")
    console.print(counts, highlight=False)
    if card.tokens is not None:
        t = card.tokens
        console.print(
            f"{t.unit}: {t.total} total, {t.trained} with loss, mean {t.mean_per_row:.0f}/row"
        )


@data_app.command("sft")
@config_flags(SFTData)
def sft_cmd(
    overrides: dict[str, Any],
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Successful trajectories, loss on the agent's turns; optional general-chat mixing."""
    from palaestra.data import build_sft
    from palaestra.trajectory import StoreError

    cfg: SFTData = _settings(SFTData, config, overrides, "data sft")
    try:
        ds, card = build_sft(
            run_dirs,
            threshold=cfg.threshold,
            dedup=cfg.dedup,
            mix_ratio=cfg.mix_ratio,
            general=cfg.general,
            reward=cfg.reward,
            tokenizer=_tokenizer(cfg.tokenizer),
        )
    except (StoreError, ValueError, OSError) as e:
        fail(str(e))
    _finish(ds, card, out)


@data_app.command("refine")
@config_flags(RefineData, decls={"types": ("--type",)})
def refine_cmd(
    overrides: dict[str, Any],
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """AgentRefine data: errors in context without loss, teacher corrections with loss."""
    from palaestra.data import ERROR_TYPES, build_refine, build_refine_synthetic
    from palaestra.trajectory import StoreError

    cfg: RefineData = _settings(RefineData, config, overrides, "data refine")
    kinds: Any = cfg.types or (
        ["wrong_action", "invalid_action", "format_error"] if cfg.synthetic else list(ERROR_TYPES)
    )
    try:
        tok = _tokenizer(cfg.tokenizer)
        if cfg.synthetic:
            ds, card = build_refine_synthetic(
                run_dirs, types=kinds, per_episode=cfg.per_episode, seed=cfg.seed, tokenizer=tok
            )
        else:
            model = None
            if cfg.teacher != "expert":
                from palaestra.model import get_model

                kw = {"base_url": cfg.base_url} if cfg.base_url else {}
                model = get_model(cfg.teacher, **kw)
            ds, card = build_refine(
                run_dirs,
                teacher=model,
                types=kinds,
                max_errors=cfg.max_errors,
                continuation=cfg.continuation,
                correction=cfg.correction,
                tokenizer=tok,
            )
    except (StoreError, ValueError, OSError, ImportError) as e:
        fail(str(e))
    _finish(ds, card, out)


@data_app.command("pairs")
@config_flags(PairsData, decls={"kinds": ("--kind",)})
def pairs_cmd(
    overrides: dict[str, Any],
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """DPO pairs: success vs failure on a task, and diverging steps with different outcomes."""
    from palaestra.data import build_pairs
    from palaestra.trajectory import StoreError

    cfg: PairsData = _settings(PairsData, config, overrides, "data pairs")
    try:
        ds, card = build_pairs(
            run_dirs,
            kinds=cfg.kinds,
            threshold=cfg.threshold,
            max_per_task=cfg.max_per_task,
            min_margin=cfg.min_margin,
            tree_margin=cfg.tree_margin,
            tokenizer=_tokenizer(cfg.tokenizer),
        )
    except (StoreError, ValueError, OSError) as e:
        fail(str(e))
    _finish(ds, card, out)


@data_app.command("reflect")
@config_flags(ReflectData, decls={"model": MODEL_DECLS})
def reflect_cmd(
    overrides: dict[str, Any],
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Agent-R revision data from search trees: bad prefix without loss, revision and good suffix with."""
    from palaestra.data import build_reflect
    from palaestra.trajectory import StoreError

    cfg: ReflectData = _settings(ReflectData, config, overrides, "data reflect")
    try:
        actor = None
        if cfg.model is not None:
            from palaestra.model import get_model

            kw = {"base_url": cfg.base_url} if cfg.base_url else {}
            actor = get_model(cfg.model, **kw)
        ds, card = build_reflect(
            run_dirs,
            model=actor,
            max_per_tree=cfg.max_per_tree,
            tokenizer=_tokenizer(cfg.tokenizer),
        )
    except (StoreError, ValueError, OSError, ImportError) as e:
        fail(str(e))
    if not card.counts.get("trees"):
        fail(
            "no search trees in these runs; make them with a search agent, e.g. "
            "`palaestra rollout --agent search:mcts ...`"
        )
    _finish(ds, card, out)


class MemoryData(BaseModel):
    """``palaestra data memory``: a trajectory memory for ``--memory`` (react, reflexion)."""

    model_config = ConfigDict(extra="forbid")

    only_success: bool = Field(default=True, description="Keep successful episodes only.")
    max_steps: int = Field(default=12, ge=1, description="Steps kept per remembered episode.")
    poison_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Red-teaming (AgentPoison): add this fraction of poisoned entries.",
    )
    malicious_action: str | None = Field(
        default=None, description="With poison_rate: the action the poisoned entries take first."
    )
    trigger: str | None = Field(
        default=None, description="With poison_rate: the trigger phrase (default: a fixed one)."
    )
    seed: int = Field(default=0, description="With poison_rate: which entries are copied.")


@data_app.command("memory")
@config_flags(MemoryData)
def memory_cmd(
    overrides: dict[str, Any],
    run_dirs: list[Path] = RunDirs,
    out: Path = typer.Option(..., "--out", "-o", help="Output memory file (JSONL)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Past episodes as a retrieval memory: the agent sees the most similar ones as examples."""
    from palaestra.agent import DEFAULT_TRIGGER, TrajectoryMemory, poison_memory
    from palaestra.trajectory import RunStore, StoreError

    cfg: MemoryData = _settings(MemoryData, config, overrides, "data memory")
    if cfg.poison_rate is not None and not cfg.malicious_action:
        fail("--poison-rate needs --malicious-action (the action the poisoned entries take)")
    try:
        episodes: list[Any] = []
        for run_dir in run_dirs:
            with RunStore(run_dir, readonly=True) as store:
                episodes += list(store.episodes())
        memory = TrajectoryMemory.from_episodes(
            episodes, only_success=cfg.only_success, max_steps=cfg.max_steps
        )
        if not len(memory):
            fail(
                f"no {'successful ' if cfg.only_success else ''}episodes in {len(run_dirs)} run(s)"
            )
        if cfg.poison_rate is not None:
            memory = poison_memory(
                memory,
                rate=cfg.poison_rate,
                malicious_action=cfg.malicious_action or "",
                trigger=cfg.trigger or DEFAULT_TRIGGER,
                seed=cfg.seed,
            )
        memory.save(out)
    except (StoreError, ValueError, OSError, ImportError) as e:
        fail(str(e))
    poisoned = sum(e.poisoned for e in memory.entries)
    console.print(
        f"[bold]memory[/]: {len(memory)} entries ({poisoned} poisoned) from "
        f"{len(episodes)} episodes -> {out}"
    )
