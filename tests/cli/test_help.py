"""`palaestra <cmd> --help` against the config models: every field has its flag and its description.

The expected flags are computed here from the models (not from the CLI's own
builder): ``--`` plus the field's dotted path with dashes, except a few
spellings kept from before. And every command's help renders, with the shared
``--config/-c`` and ``--model/-m`` spellings wherever it takes one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import pytest
import typer
import typer.rich_utils
from pydantic import BaseModel
from typer.testing import CliRunner

from palaestra.cli import app

runner = CliRunner()

#: Fields whose flag is not ``--`` + the field name (spellings kept from before).
RENAMED = {
    "envs": "--env",
    "learning_rate": "--learning-rate",
    "types": "--type",
    "kinds": "--kind",
}


def _configs() -> list[tuple[list[str], type[BaseModel]]]:
    from palaestra.cli.data import MemoryData, PairsData, RefineData, ReflectData, SFTData
    from palaestra.eval import EvalConfig
    from palaestra.evolve import EvolveConfig
    from palaestra.model import PretrainConfig
    from palaestra.rollout import RolloutConfig
    from palaestra.train import DPORunConfig, ORMConfig, SFTRunConfig

    return [
        (["rollout"], RolloutConfig),
        (["eval"], EvalConfig),
        (["evolve"], EvolveConfig),
        (["train", "sft"], SFTRunConfig),
        (["train", "dpo"], DPORunConfig),
        (["train", "orm"], ORMConfig),
        (["data", "sft"], SFTData),
        (["data", "refine"], RefineData),
        (["data", "pairs"], PairsData),
        (["data", "reflect"], ReflectData),
        (["data", "memory"], MemoryData),
        (["model", "build-tiny"], PretrainConfig),
    ]


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 1000)  # no wrapped help lines


def _help(args: list[str]) -> str:
    res = runner.invoke(app, [*args, "--help"])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.replace("│", " ").split())


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        annotation = args[0] if len(args) == 1 else None
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(flag, text the help must show) for every field; a section's own description too."""
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        nested = _model_of(info.annotation)
        text = info.description or (nested.__doc__ or "").strip().split("\n")[0]
        if nested is not None:
            yield "--" + ".".join(p.replace("_", "-") for p in path) + ".*", text
            yield from _leaves(nested, path)
        else:
            flag = RENAMED.get(name) if not prefix and name in RENAMED else None
            yield flag or "--" + ".".join(p.replace("_", "-") for p in path), text


@pytest.mark.parametrize(
    ("args", "model"), _configs(), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_help_lists_every_config_field_with_its_description(
    args: list[str], model: type[BaseModel]
) -> None:
    text = _help(args)
    missing = []
    for flag, description in _leaves(model):
        if not re.search(rf"(?<![\w.-]){re.escape(flag)}(?![\w-])", text):
            missing.append(flag)
        if " ".join(description.split()) not in text:
            missing.append(f"{flag}: {description!r}")
    assert not missing, missing
    assert "--config -c" in text


def _commands() -> list[list[str]]:
    from palaestra.cli._lazy import LazyGroup, load_command

    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    found: list[list[str]] = []
    for name in root.list_commands(None):  # type: ignore[arg-type]
        cmd = root.get_command(None, name)  # type: ignore[arg-type]
        if name in root.LAZY:
            cmd = load_command(name, root.LAZY[name])
        subs = getattr(cmd, "commands", None)
        found += [[name, sub] for sub in subs] if subs else [[name]]
    return found


def test_every_command_renders_help_with_the_shared_spellings() -> None:
    commands = _commands()
    assert len(commands) >= 25 and ["data", "sft"] in commands and ["evolve"] in commands
    for args in commands:
        text = _help(args)
        assert "Usage: palaestra " + " ".join(args) in text, text
        if "--config" in text:
            assert "--config -c" in text, args
        if "--model" in text:
            assert re.search(r"--model (--\S+ )?-m", text), args


def test_old_spellings_still_work_and_are_hidden() -> None:
    text = _help(["rollout"])
    assert "--max-turns" in text and "--epochs -k" in text
    assert "--max-steps" not in text and "--attempts" not in text
    assert "Usage: palaestra evolve [OPTIONS]" in _help(["evolve"])
    text = _help(["model", "build-tiny"])
    assert "--max-steps" in text and not re.search(r"(?<![\w-])--steps(?![\w-])", text)
