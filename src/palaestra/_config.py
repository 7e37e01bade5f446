"""Typed configs from YAML files and CLI flags: one loader for every command.

Precedence: a flag given on the command line > the YAML file > the default.
Unknown keys in a file are errors that name them and list the valid ones;
invalid values are errors that name the field.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_config(cls: type[M], path: str | Path | None, what: str, overrides: dict[str, Any]) -> M:
    """Build ``cls`` from an optional YAML file and flag ``overrides`` (``None`` = not given)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file {p} does not exist")
        loaded: Any = read_yaml(p) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping of keys to values")
        data.update({str(k): v for k, v in loaded.items()})  # pyright: ignore[reportUnknownVariableType]
        valid = set(cls.model_fields)
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(
                f"{p}: unknown key(s) {', '.join(unknown)}; valid keys are: {', '.join(sorted(valid))}"
            )
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        lines = [
            f"  {'.'.join(map(str, err['loc'])) or '(config)'}: "
            + err["msg"].removeprefix("Value error, ")
            for err in e.errors()
        ]
        source = f" in {path}" if path else ""
        raise ValueError(f"invalid {what} config{source}:\n" + "\n".join(lines)) from None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a syntax error is a one-line ``ValueError`` at ``file:line:column``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {e.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(yaml_error_message(e, str(path))) from None


def yaml_error_message(e: yaml.YAMLError, source: str) -> str:
    """``source:line:column: YAML syntax error: what`` (one line; PyYAML's is five)."""
    if not isinstance(e, yaml.MarkedYAMLError):
        return f"{source}: YAML syntax error: {e}"
    mark, start = e.problem_mark or e.context_mark, e.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    what = str(e.problem or e.context)
    if e.context and e.problem:
        moved = start is not None and mark is not None and start.line != mark.line
        at = f" (from {start.line + 1}:{start.column + 1})" if moved and start else ""
        what = f"{e.problem}, {e.context}{at}"
    return f"{where}: YAML syntax error: {what}"


def config_changes(old: BaseModel, new: BaseModel, resumable: Collection[str]) -> list[str]:
    """``"field: old -> new"`` for every field that differs, except those in ``resumable``."""
    return [
        f"{k}: {getattr(old, k)!r} -> {getattr(new, k)!r}"
        for k in type(new).model_fields
        if k not in resumable and getattr(old, k) != getattr(new, k)
    ]


def refuse_changes(run_dir: Path, what: str, changes: list[str]) -> None:
    """Refuse to resume ``run_dir`` when its stored config differs in ``changes``."""
    if changes:
        raise ValueError(
            f"{run_dir} already holds {what} with a different config ("
            + "; ".join(changes)
            + "). Resume with the same settings, or use a new --out directory."
        )
