"""``palaestra data sft|refine|reflect|pairs RUN_DIR... --out DIR``: build training datasets from runs.

Each command writes a ``datasets`` folder (``load_from_disk``) with ``card.json``
and ``README.md`` (sources, parameters, counts, token statistics) beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from palaestra.cli._common import console, fail

data_app = typer.Typer(help="Build SFT, refinement and preference datasets from run directories.")

RunDirs = typer.Argument(..., help="Run directories (from `palaestra rollout`).")
Out = typer.Option(..., "--out", "-o", help="Output dataset folder.")
TokenizerOpt = typer.Option(
    None, "--tokenizer", help="Model id whose tokenizer counts tokens (default: words)."
)


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
def sft_cmd(
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    threshold: float = typer.Option(1.0, help="Keep episodes with score >= this."),
    dedup: bool = typer.Option(True, help="One trajectory per task (the shortest)."),
    mix_ratio: float = typer.Option(0.0, help="Share of general chat rows (AgentTuning)."),
    general: Path | None = typer.Option(
        None, help="General chat: JSONL or datasets folder (default: the shipped set)."
    ),
    reward: str = typer.Option(
        "env",
        help="Success from: env (the environment's score) or orm (orm_labels.jsonl "
        "written by `palaestra orm label`).",
    ),
    tokenizer: str | None = TokenizerOpt,
) -> None:
    """Successful trajectories, loss on the agent's turns; optional general-chat mixing."""
    from palaestra.data import build_sft
    from palaestra.trajectory import StoreError

    try:
        ds, card = build_sft(
            run_dirs,
            threshold=threshold,
            dedup=dedup,
            mix_ratio=mix_ratio,
            general=general,
            reward=reward,  # type: ignore[arg-type]
            tokenizer=_tokenizer(tokenizer),
        )
    except (StoreError, ValueError, OSError) as e:
        fail(str(e))
    _finish(ds, card, out)


@data_app.command("refine")
def refine_cmd(
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    teacher: str = typer.Option(
        "expert", help="expert (the environment's oracle) or a model id (openai/...)."
    ),
    base_url: str | None = typer.Option(None, help="Server URL for an openai/ teacher."),
    types: list[str] = typer.Option(
        [], "--type", help="Error types (repeat): invalid_action, format_error, loop, wrong_action."
    ),
    max_errors: int = typer.Option(1, help="Erroneous turns kept in context per sample."),
    continuation: str = typer.Option(
        "expert", help="Who finishes after the correction: expert or teacher."
    ),
    correction: bool = typer.Option(
        True,
        help="--no-correction: keep the corrected turn without loss (ablation: errors in "
        "context, no correction).",
    ),
    synthetic: bool = typer.Option(
        False, help="Inject errors into successful trajectories instead (no model needed)."
    ),
    per_episode: int = typer.Option(1, help="--synthetic: samples per trajectory."),
    seed: str = typer.Option("refine", help="--synthetic: seed string."),
    tokenizer: str | None = TokenizerOpt,
) -> None:
    """AgentRefine data: errors in context without loss, teacher corrections with loss."""
    from palaestra.data import ERROR_TYPES, build_refine, build_refine_synthetic
    from palaestra.trajectory import StoreError

    kinds: Any = types or (
        ["wrong_action", "invalid_action", "format_error"] if synthetic else list(ERROR_TYPES)
    )
    if continuation not in ("expert", "teacher"):
        fail("--continuation must be expert or teacher")
    try:
        tok = _tokenizer(tokenizer)
        if synthetic:
            ds, card = build_refine_synthetic(
                run_dirs, types=kinds, per_episode=per_episode, seed=seed, tokenizer=tok
            )
        else:
            model = None
            if teacher != "expert":
                from palaestra.model import get_model

                model = get_model(teacher, **({"base_url": base_url} if base_url else {}))
            ds, card = build_refine(
                run_dirs,
                teacher=model,
                types=kinds,
                max_errors=max_errors,
                continuation=continuation,  # type: ignore[arg-type]
                correction=correction,
                tokenizer=tok,
            )
    except (StoreError, ValueError, OSError, ImportError) as e:
        fail(str(e))
    _finish(ds, card, out)


@data_app.command("pairs")
def pairs_cmd(
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    kind: list[str] = typer.Option(
        ["trajectory", "step"],
        "--kind",
        help="trajectory, step and/or tree (repeat); tree reads search trees (search:* agents).",
    ),
    threshold: float = typer.Option(1.0, help="Success means score >= this."),
    max_per_task: int = typer.Option(4, help="Trajectory-level pairs per task."),
    min_margin: float = typer.Option(0.5, help="Step-level: least value gap of a pair."),
    tree_margin: float = typer.Option(0.1, help="Tree: least Q-value gap of a pair."),
    tokenizer: str | None = TokenizerOpt,
) -> None:
    """DPO pairs: success vs failure on a task, and diverging steps with different outcomes."""
    from palaestra.data import build_pairs
    from palaestra.trajectory import StoreError

    try:
        ds, card = build_pairs(
            run_dirs,
            kinds=kind,
            threshold=threshold,
            max_per_task=max_per_task,
            min_margin=min_margin,
            tree_margin=tree_margin,
            tokenizer=_tokenizer(tokenizer),
        )
    except (StoreError, ValueError, OSError) as e:
        fail(str(e))
    _finish(ds, card, out)


@data_app.command("reflect")
def reflect_cmd(
    run_dirs: list[Path] = RunDirs,
    out: Path = Out,
    model: str | None = typer.Option(
        None,
        "--model",
        help="The actor model that names the first wrong step (default: the divergence step).",
    ),
    base_url: str | None = typer.Option(None, help="Server URL for an openai/ model."),
    max_per_tree: int = typer.Option(2, help="Revision samples per search tree."),
    tokenizer: str | None = TokenizerOpt,
) -> None:
    """Agent-R revision data from search trees: bad prefix without loss, revision and good suffix with."""
    from palaestra.data import build_reflect
    from palaestra.trajectory import StoreError

    try:
        actor = None
        if model is not None:
            from palaestra.model import get_model

            actor = get_model(model, **({"base_url": base_url} if base_url else {}))
        ds, card = build_reflect(
            run_dirs, model=actor, max_per_tree=max_per_tree, tokenizer=_tokenizer(tokenizer)
        )
    except (StoreError, ValueError, OSError, ImportError) as e:
        fail(str(e))
    if not card.counts.get("trees"):
        fail(
            "no search trees in these runs; make them with a search agent, e.g. "
            "`palaestra rollout --agent search:mcts ...`"
        )
    _finish(ds, card, out)
