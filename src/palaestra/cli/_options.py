"""Typer options derived from pydantic config models: flags, YAML keys and help from one source.

``@config_flags(RolloutConfig)`` gives a command one option per field of the
config (nested models flattened to dotted flags: ``--search.branching``) and
hands the command the flags given as ``overrides``, the nested dict that
:func:`palaestra._config.load_config` puts over the YAML file:

    @config_flags(RolloutConfig, decls={"model": ("--model", "-m")})
    def rollout_cmd(overrides: dict[str, Any], out: Path = ..., config: Path | None = CONFIG_OPTION):
        cfg = load_config(config, **overrides)

So the help cannot drift from the config: a field's description is its help,
its default is shown as the default, a ``Literal`` type lists its choices, and
a field's old names (``validation_alias``) are hidden flags that still work, as
are a command's own old spellings of a flag (``old_flags``: a flag that was
never a config key, such as build-tiny's ``--steps`` for ``max_steps``).
An option's default is the field's (so help shows it), but only the flags
given on the command line become overrides (click's parameter source says
which): the YAML file and the config's defaults apply underneath. Values are
validated by the config, whose errors name the field (``n: Input should be
greater than or equal to 1``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import typer
import yaml
from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic.fields import FieldInfo
from rich.markup import escape
from typer.models import ParameterInfo

from palaestra._config import yaml_error_message
from palaestra.cli._common import fail

#: ``--config/-c``: every command with settings takes its YAML file the same way.
CONFIG_DECLS = ("--config", "-c")
CONFIG_HELP = "YAML file of settings (the keys are the flags' names); flags override it."
#: ``--model/-m``: every command that takes a model id spells it the same way.
MODEL_DECLS = ("--model", "-m")
#: Longest list of choices shown in the metavar column (longer ones go into the help text).
_MAX_METAVAR = 30
#: The (hidden) parameter through which typer hands a derived command its click context.
_CTX = "palaestra_click_context"
#: The name of the command's parameter that receives the flags given.
OVERRIDES = "overrides"


#: The shared ``--config/-c`` option (``None`` when not given).
CONFIG_OPTION: Any = typer.Option(None, *CONFIG_DECLS, help=CONFIG_HELP, show_default=False)


@dataclass(frozen=True)
class Flag:
    """One command-line option for one config field (or an old name of one)."""

    #: Field names from the config down to the field: ``("search", "branching")``.
    path: tuple[str, ...]
    #: The command parameter's name (an identifier; unique within the command).
    param: str
    #: The option's flags, the first its long name: ``("--max-turns",)``.
    decls: tuple[str, ...]
    annotation: Any
    option: Any
    #: The value is YAML text (dicts, unions): parsed before it goes to the config.
    yaml_value: bool = False
    #: A hidden flag for an old name of the field: used when the field's own is not given.
    alias_of: str | None = None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def field_order(model: type[BaseModel]) -> list[str]:
    """``model``'s fields, a subclass's own first: a command's own settings lead its help."""
    order: list[str] = []
    for cls in model.__mro__:
        own = inspect.get_annotations(cls)
        order += [n for n in own if n in model.model_fields and n not in order]
    return order + [n for n in model.model_fields if n not in order]


def flag_name(path: Sequence[str]) -> str:
    """``("base_sft", "max_steps")`` -> ``--base-sft.max-steps``."""
    return "--" + ".".join(p.replace("_", "-") for p in path)


def derive_flags(
    model: type[BaseModel],
    *,
    exclude: Sequence[str] = (),
    decls: Mapping[str, Sequence[str]] | None = None,
    old_flags: Mapping[str, Sequence[str]] | None = None,
    _prefix: tuple[str, ...] = (),
    _defaults: BaseModel | None = None,
    _panel: str | None = None,
) -> list[Flag]:
    """The options of every field of ``model`` (nested models: one per leaf field).

    ``exclude`` names fields (dotted paths) the command takes otherwise, ``decls``
    replaces a field's flags (``{"model": ("--model", "-m")}``), and ``old_flags``
    adds hidden flags for it (``{"max_steps": ("--steps",)}``): spellings a command
    used before its flags came from the config, which the YAML file does not take.
    """
    decls = decls or {}
    old_flags = old_flags or {}
    unknown = sorted(set(old_flags) - set(_field_paths(model))) if not _prefix else []
    if unknown:  # a typo here would silently drop an old spelling
        raise TypeError(f"old_flags name no field of {model.__name__}: {unknown}")
    flags: list[Flag] = []
    for name in field_order(model):
        info = model.model_fields[name]
        path = (*_prefix, name)
        dotted = ".".join(path)
        if dotted in exclude:
            continue
        default = _field_default(info, _defaults, name)
        nested = _nested_model(info.annotation)
        if nested is not None:
            sub_defaults = default if isinstance(default, BaseModel) else _try_default(nested)
            title = info.description or _first_line(nested.__doc__)
            flags += derive_flags(
                nested,
                exclude=exclude,
                decls=decls,
                old_flags=old_flags,
                _prefix=path,
                _defaults=sub_defaults,
                _panel=escape(f"{flag_name(path)}.*: {title}"),
            )
            continue
        names = tuple(decls.get(dotted, (flag_name(path),)))
        param = "__".join(path)
        flag = _flag(path, param, names, info, default, _panel)
        flags.append(flag)
        olds = [flag_name((*_prefix, old)) for old in _old_names(info, name)]
        flags += [_old_flag(flag, old) for old in [*olds, *old_flags.get(dotted, ())]]
    return flags


def _old_flag(flag: Flag, old: str) -> Flag:
    """A hidden flag ``old`` (``--steps``) that sets ``flag``'s field when ``flag`` is not given."""
    return Flag(
        path=flag.path,
        param=old.removeprefix("--").replace("-", "_").replace(".", "__") + "__old",
        decls=(old,),
        annotation=flag.annotation,
        option=_option(
            _bool_decls(old) if _is_bool(flag) else (old,),
            help=f"Old name of {flag.decls[0].split('/')[0]}.",
            hidden=True,
            metavar=None,
            show_default=False,
            panel=None,
        ),
        yaml_value=flag.yaml_value,
        alias_of=flag.param,
    )


def _field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[str]:
    """Every field's dotted path, nested models' fields included (and the models' own)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        out.append(".".join(path))
        nested = _nested_model(info.annotation)
        if nested is not None:
            out += _field_paths(nested, path)
    return out


def config_flags(
    model: type[BaseModel],
    *,
    exclude: Sequence[str] = (),
    decls: Mapping[str, Sequence[str]] | None = None,
    old_flags: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a command so that it takes one option per field of ``model``.

    The command declares a parameter ``overrides: dict[str, Any]``; it gets the
    flags given, nested as the config is (``{"search": {"branching": 2}}``).
    Its other parameters stay as they are (``--out``, ``--config``, ...).
    ``exclude``, ``decls`` and ``old_flags`` are :func:`derive_flags`'.
    """
    flags = derive_flags(model, exclude=exclude, decls=decls, old_flags=old_flags)

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation), kind=p.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()
            if p.name != OVERRIDES
        ]
        taken = {p.name for p in own}
        clash = [f.param for f in flags if f.param in taken]
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {clash} clash with config fields")
        params = [
            *own,
            # typer passes the click context to a parameter typed typer.Context.
            inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
            *(
                inspect.Parameter(
                    f.param,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=f.option,
                    annotation=f.annotation,
                )
                for f in flags
            ),
        ]

        def command(**kwargs: Any) -> None:
            ctx: typer.Context | None = kwargs.pop(_CTX, None)
            values = {f.param: kwargs.pop(f.param, None) for f in flags}
            if ctx is not None:  # under click: only what the command line (or env) set
                values = {k: v for k, v in values.items() if _given(ctx, k)}
            fn(**kwargs, **{OVERRIDES: overrides_from(flags, values)})

        command.__name__ = fn.__name__
        command.__qualname__ = fn.__qualname__
        command.__module__ = fn.__module__
        command.__doc__ = fn.__doc__
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.config_model = model  # pyright: ignore[reportFunctionMemberAccess]
        command.config_flags = flags  # pyright: ignore[reportFunctionMemberAccess]
        return command

    return decorate


def overrides_from(flags: Sequence[Flag], given: Mapping[str, Any]) -> dict[str, Any]:
    """The flags given (not ``None``, not an empty list) as the nested dict of overrides."""
    out: dict[str, Any] = {}
    for flag in flags:
        value = given.get(flag.param)
        if flag.alias_of is not None and given.get(flag.alias_of) not in (None, [], ()):
            continue  # the field's own flag wins over its old name
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        if isinstance(value, tuple):
            value = list(value)  # pyright: ignore[reportUnknownArgumentType]
        if flag.yaml_value:
            value = _parse_yaml(flag, value)
        node = out
        for part in flag.path[:-1]:
            node = node.setdefault(part, {})
        node[flag.path[-1]] = value
    return out


def _given(ctx: typer.Context, param: str) -> bool:
    # By name: typer vendors its own click, whose ParameterSource is not click's.
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


# ---- one field -> one option ---------------------------------------------------------------


def _flag(
    path: tuple[str, ...],
    param: str,
    names: tuple[str, ...],
    info: FieldInfo,
    default: Any,
    panel: str | None,
) -> Flag:
    base, _ = _strip_optional(info.annotation)
    yaml_value = False
    metavar: str | None = None
    extra_help = ""
    if base is bool:
        annotation: Any = bool | None
        decls = _bool_decls(names[0]) + names[1:]
    elif _literal_values(base):
        annotation = str | None
        metavar = "|".join(map(str, _literal_values(base)))
        decls = names
    elif base in (int, float, str, Path):
        annotation = base | None
        decls = names
    elif get_origin(base) is list and _scalar(get_args(base)[0]):
        item = get_args(base)[0]
        values = _literal_values(item)
        annotation = list[str] | None if values else list[item] | None
        decls = names
        repeat = " Repeat the flag for several."
        if values and len("|".join(map(str, values))) > _MAX_METAVAR:
            repeat += " Choices: " + ", ".join(map(str, values)) + "."
        elif values:
            metavar = "|".join(map(str, values))
        extra_help = repeat
    else:  # dicts, unions of several types, JSON values: YAML text
        annotation = str | None
        metavar = "YAML"
        yaml_value = True
        decls = names
    # Help is rich markup: a description's "[easy]" would be read as a style tag.
    help_text = escape((info.description or "").strip() + extra_help)
    shown = _shown_default(default, yaml_value)
    if _required(info, default):
        help_text += " Required: give it here or in --config."
    if isinstance(shown, bool):
        # typer would show a bool's default as the flag's name ("data.expert").
        help_text += f" \\[default: {'on' if shown else 'off'}]"
    option = _option(
        decls,
        default=shown,
        help=help_text,
        hidden=False,
        metavar=metavar,
        show_default=shown is not None and not isinstance(shown, bool),
        panel=panel,
    )
    return Flag(path, param, decls, annotation, option, yaml_value=yaml_value)


def _option(
    decls: Sequence[str],
    *,
    default: Any = None,
    help: str,
    hidden: bool,
    metavar: str | None,
    show_default: bool | str,
    panel: str | None,
) -> ParameterInfo:
    return typer.Option(
        default,
        *decls,
        help=help,
        hidden=hidden,
        metavar=metavar,
        show_default=show_default,
        rich_help_panel=panel,
    )


def _bool_decls(name: str) -> tuple[str, ...]:
    return (f"{name}/--no-{name.removeprefix('--')}",)


def _is_bool(flag: Flag) -> bool:
    return flag.annotation == bool | None


def _old_names(info: FieldInfo, name: str) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str) and c != name]
    return [alias] if isinstance(alias, str) and alias != name else []


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    base, _ = _strip_optional(annotation)
    return base if isinstance(base, type) and issubclass(base, BaseModel) else None


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _scalar(annotation: Any) -> bool:
    return annotation in (int, float, str) or bool(_literal_values(annotation))


def _field_default(info: FieldInfo, defaults: BaseModel | None, name: str) -> Any:
    """The default a flag shows: the enclosing default's value (a factory may set its own)."""
    if defaults is not None:
        return getattr(defaults, name)
    if info.is_required():
        return ...
    return info.get_default(call_default_factory=True)


def _try_default(model: type[BaseModel]) -> BaseModel | None:
    try:
        return model()
    except ValidationError:
        return None


def _required(info: FieldInfo, default: Any) -> bool:
    return default is ... or (info.is_required() and default is None)


def _shown_default(default: Any, yaml_value: bool) -> Any:
    """The default click holds (and help shows); ``None`` where there is none to show."""
    if default is ... or default is None or default == [] or default == {} or yaml_value:
        return None
    return default


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]


def _parse_yaml(flag: Flag, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as e:
        fail(yaml_error_message(e, flag.decls[0]))
