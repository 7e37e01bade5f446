"""``palaestra envs``: list, describe, play and check registered environments."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table

from palaestra.cli._common import console, fail, spec_or_fail
from palaestra.env import (
    DIFFICULTIES,
    SPLITS,
    Difficulty,
    EnvCheckError,
    Split,
    check_env,
    make,
    registry,
)

app = typer.Typer(help="List, describe, play and check environments.", no_args_is_help=True)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


@app.command("list")
def list_envs(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered environments."""
    rows: list[dict[str, object]] = []
    for env_id, s in registry().items():
        try:
            cls = s.load()
            description = str(getattr(cls, "description", "") or "")
        except ImportError as e:
            # The adapter's own message (the registry wraps it) names the extra to install.
            description = f"(unavailable: {e.__cause__ or e})"
        rows.append(
            {
                "id": env_id,
                "max_steps": s.max_episode_steps,
                "source": s.source,
                "description": _first_line(description),
            }
        )
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="Registered environments")
    for col in ("id", "max steps", "source", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(escape(str(r[k])) for k in ("id", "max_steps", "source", "description")))
    console.print(table)


@app.command("show")
def show(
    env_id: str = typer.Argument(..., help="Environment id, e.g. shop-v1."),
    seed: int = typer.Option(0, help="Seed of the example task."),
    split: str = typer.Option("train", help="Split of the example task: train, test or heldout."),
    difficulty: str = typer.Option("easy", help="Difficulty of the example task."),
) -> None:
    """Describe an environment: what it is, its actions, and an example task."""
    s = spec_or_fail(env_id)
    sp, diff = _split_difficulty(split, difficulty)
    env = make(env_id)
    try:
        task = env.make_task(seed, sp, diff)
        obs = env.reset(task)
        console.print(Panel(escape(env.description or "(no description)"), title=escape(env_id)))
        console.print(f"[bold]Actions:[/] {escape(env.action_help)}")
        console.print(
            f"[bold]Step limit:[/] {s.max_episode_steps}   [bold]Source:[/] {escape(s.source)}"
        )
        console.print(f"[bold]Example task[/] {escape(task.task_id)}")
        console.print(Panel(escape(obs.text), title="first observation"))
        actions = ", ".join(env.available_actions()[:20])
        console.print(f"[bold]Available actions:[/] {escape(actions)}")
        if env.unwrapped.has_expert:
            console.print(f"[bold]Expert's next action:[/] {escape(env.expert())}")
        else:
            console.print("[bold]Expert:[/] none (this environment has no oracle)")
    finally:
        env.close()


def _split_difficulty(split: str, difficulty: str) -> tuple[Split, Difficulty]:
    if split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    if difficulty not in DIFFICULTIES:
        fail(f"--difficulty must be one of {', '.join(DIFFICULTIES)}; got {difficulty!r}")
    return split, difficulty


@app.command("play")
def play(
    env_id: str = typer.Argument(..., help="Environment id, e.g. house-v1."),
    seed: int = typer.Option(0, help="Task seed."),
    split: str = typer.Option("train", help="train, test or heldout."),
    difficulty: str = typer.Option("easy", help="easy, medium or hard."),
) -> None:
    """Play an environment yourself in the terminal.

    Type an action, or the number of an available action. Commands:
    ':actions' lists actions, ':hint' shows the expert's next action, ':quit' ends.
    """
    spec_or_fail(env_id)
    sp, diff = _split_difficulty(split, difficulty)
    env = make(env_id)
    try:
        task = env.make_task(seed, sp, diff)
        obs = env.reset(task)
        console.print(f"[dim]{escape(task.task_id)} — actions: {escape(env.action_help)}[/]")
        console.print(Panel(escape(obs.text), title="start"))
        score = 0.0
        while not obs.done:
            actions = env.available_actions()
            raw = Prompt.ask("[bold cyan]>[/]", console=console).strip()
            if raw in (":quit", ":q"):
                console.print("Bye.")
                return
            if raw == ":actions":
                for i, a in enumerate(actions, 1):
                    console.print(f"  {i:>2}. {escape(a)}")
                continue
            if raw == ":hint":
                console.print(f"[dim]expert: {escape(env.expert())}[/]")
                continue
            action = (
                actions[int(raw) - 1] if raw.isdigit() and 0 < int(raw) <= len(actions) else raw
            )
            obs = env.step(action)
            score += obs.reward
            style = "yellow" if obs.info.get("invalid") else "white"
            title = f"step {obs.info['step']}: {escape(action)}"
            console.print(Panel(escape(obs.text), title=title, style=style))
            console.print(f"[dim]progress {env.progress():.0%}[/]")
        outcome = (
            "solved" if obs.info.get("success") else ("truncated" if obs.truncated else "failed")
        )
        console.print(
            f"[bold]Episode over: {outcome}[/], score {score:.2f}, {obs.info['step']} steps."
        )
    finally:
        env.close()


@app.command("check")
def check(
    env_ids: list[str] = typer.Argument(
        None, help="Ids to check (default: the built-in families; adapters need extras)."
    ),
    seeds: int = typer.Option(3, help="Seeds per difficulty."),
) -> None:
    """Run the conformance checker over registered environments."""
    ids = env_ids or [i for i, s in registry().items() if s.source == "palaestra"]
    for env_id in ids:
        spec_or_fail(env_id)
    table = Table(title="check_env")
    for col in ("id", "tasks", "expert episodes", "seconds", "result"):
        table.add_column(col)
    failures: dict[str, list[str]] = {}
    for env_id in ids:
        with console.status(f"checking {env_id}..."):
            try:
                rep = check_env(
                    lambda env_id=env_id: make(env_id),
                    seeds=range(seeds),
                    raise_on_error=False,
                )
                problems, tasks_n, eps, secs = (
                    rep.problems,
                    rep.tasks_checked,
                    rep.expert_episodes,
                    rep.seconds,
                )
            except (EnvCheckError, ImportError, Exception) as e:  # report, don't stop the sweep
                problems, tasks_n, eps, secs = [f"{type(e).__name__}: {e}"], 0, 0, 0.0
        if problems:
            failures[env_id] = problems
        ok = "[green]pass[/]" if not problems else f"[red]{len(problems)} problem(s)[/]"
        table.add_row(escape(env_id), str(tasks_n), str(eps), f"{secs:.1f}", ok)
    console.print(table)
    for env_id, problems in failures.items():
        console.print(f"[red bold]{escape(env_id)}[/]")
        for p in problems[:20]:
            console.print(f"  - {escape(p)}", highlight=False)
    if failures:
        raise typer.Exit(1)
