"""Typed configs from YAML files and CLI flags: one loader for every command.

Precedence: a flag given on the command line > the YAML file > the default.
Unknown keys in a file are errors that name them and list the valid ones;
invalid values are errors that name the field.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import AliasChoices, BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_config(cls: type[M], path: str | Path | None, what: str, overrides: dict[str, Any]) -> M:
    """Build ``cls`` from an optional YAML file and flag ``overrides`` (``None`` = not given).

    A field's old names (its ``validation_alias`` choices) are read as the field.
    Overrides of a nested model's fields (``{"search": {"branching": 2}}``) change
    only those fields: the rest of the section comes from the file, else from the
    field's default.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file {p} does not exist")
        loaded: Any = read_yaml(p) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping of keys to values")
        raw = {str(k): v for k, v in loaded.items()}  # pyright: ignore[reportUnknownVariableType]
        names = field_names(cls)
        unknown = sorted(set(raw) - set(names))
        if unknown:
            valid = sorted(cls.model_fields)
            raise ValueError(
                f"{p}: unknown key(s) {', '.join(unknown)}; valid keys are: {', '.join(valid)}"
            )
        for key, value in raw.items():
            field = names[key]
            if field in data:
                raise ValueError(f"{p}: {key} is another name of {field}; give one of them")
            data[field] = value
    data = merge_overrides(cls, data, overrides)
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


def field_names(cls: type[BaseModel]) -> dict[str, str]:
    """Every name a key of ``cls`` may have (field names and their old names) -> the field."""
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        names[name] = name
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({c: name for c in alias.choices if isinstance(c, str)})
        elif isinstance(alias, str):
            names[alias] = name
    return names


def merge_overrides(
    cls: type[BaseModel], data: dict[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """``data`` with the given (not ``None``) ``overrides`` on top; nested models field by field."""
    out = dict(data)
    for key, value in overrides.items():
        if value is None:
            continue
        info = cls.model_fields.get(key)
        nested = _model_type(info.annotation) if info is not None else None
        if nested is None or not isinstance(value, Mapping):
            out[key] = value
            continue
        base: Any = out.get(key)
        if base is None:
            default = info.get_default(call_default_factory=True) if info is not None else None
            base = default.model_dump(exclude_unset=True) if isinstance(default, BaseModel) else {}
        elif isinstance(base, BaseModel):
            base = base.model_dump(exclude_unset=True)
        if not isinstance(base, Mapping):
            out[key] = value
            continue
        out[key] = merge_overrides(nested, dict(base), value)  # pyright: ignore[reportUnknownArgumentType]
    return out


def _model_type(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field typed ``Model`` or ``Model | None``; else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        models = [
            a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        others = [a for a in get_args(annotation) if a is not type(None) and a not in models]
        if len(models) == 1 and not others:
            return models[0]
    return None


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


def load_entry_point(target: str, needed_by: str, hint: str = "") -> Any:
    """Import ``"module:attr.path"`` now (the registries' lazy entry points: envs, agents, models).

    A failed import names what needed it and why (``needed_by``, e.g. ``"agent 'react'"``),
    followed by ``hint`` (e.g. the ``pip install`` line of an extra).
    """
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(
            f"{needed_by} needs {module_name!r}, which failed to import: {e}{hint}"
        ) from e
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
