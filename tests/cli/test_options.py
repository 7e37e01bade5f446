"""`palaestra.cli._options`: typer options derived from a pydantic config, and what they hand over."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import typer
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from palaestra._config import load_config
from palaestra.cli._options import CONFIG_OPTION, config_flags, derive_flags, flag_name

runner = CliRunner()


class Inner(BaseModel):
    """Inner settings."""

    model_config = ConfigDict(extra="forbid")

    depth: int = Field(default=5, ge=1, description="How deep.")
    kind: Literal["a", "b"] = Field(default="a", description="Which kind.")


class Demo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A required name.")
    turns: int = Field(
        default=3,
        ge=1,
        validation_alias=AliasChoices("turns", "steps"),
        description="Turns [per episode].",
    )
    fast: bool = Field(default=True, description="Go fast.")
    split: Literal["train", "test"] = Field(default="train", description="Which split.")
    tags: list[Literal["x", "y"]] = Field(
        default_factory=list[Literal["x", "y"]], description="Tags."
    )
    params: dict[str, Any] = Field(default_factory=dict[str, Any], description="Free params.")
    inner: Inner = Field(default_factory=lambda: Inner(depth=9), description="The inner part.")


def _app(seen: list[dict[str, Any]], tmp_config: bool = True) -> typer.Typer:
    app = typer.Typer()

    @app.command("run")
    @config_flags(Demo, decls={"name": ("--name", "-n")})
    def run(
        overrides: dict[str, Any],
        out: Path = typer.Option(...),
        config: Path | None = CONFIG_OPTION,
    ) -> None:
        """Run the demo."""
        seen.append(overrides)
        cfg = load_config(Demo, config, "demo", overrides)
        typer.echo(cfg.model_dump_json())

    app.command("other")(lambda: None)  # two commands: typer keeps the subcommand name
    return app


def test_one_flag_per_leaf_field_with_dotted_nested_names_and_hidden_old_names() -> None:
    flags = {f.decls[0]: f for f in derive_flags(Demo)}
    assert set(flags) == {
        "--name", "--turns", "--fast/--no-fast", "--split", "--tags", "--params",
        "--inner.depth", "--inner.kind", "--steps",
    }  # fmt: skip
    assert flags["--steps"].alias_of == "turns" and flags["--steps"].option.hidden
    assert flags["--inner.depth"].path == ("inner", "depth")
    assert flags["--params"].yaml_value and not flags["--turns"].yaml_value
    assert flag_name(("base_sft", "max_steps")) == "--base-sft.max-steps"
    assert [f.path[0] for f in derive_flags(Demo, exclude=["inner.kind", "params"])].count(
        "inner"
    ) == 1


def test_help_shows_descriptions_defaults_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer.rich_utils

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 300)
    res = runner.invoke(_app([]), ["run", "--help"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "Turns [per episode]. [default: 3]" in out  # escaped: not read as rich markup
    assert "train|test" in out and "[default: train]" in out
    assert "How deep. [default: 9]" in out  # the enclosing default's value, not the class's
    assert "Go fast. [default: on]" in out
    assert "--inner.*: The inner part." in out
    assert "A required name. Required: give it here or in --config." in out
    assert "--steps" not in out  # old names work but are not shown


def test_only_flags_given_become_overrides_over_the_file(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: from-file\nsteps: 7\ninner: {kind: b}\nfast: false\n")
    args = ["run", "--out", "o", "-c", str(cfg), "--inner.depth", "2", "--tags", "x", "--tags", "y"]
    res = runner.invoke(_app(seen), args)
    assert res.exit_code == 0, res.output
    assert seen == [{"inner": {"depth": 2}, "tags": ["x", "y"]}]
    got = Demo.model_validate_json(res.output)
    # the file's section keeps its other keys; the file's old name is read as the field
    assert (got.name, got.turns, got.fast, got.inner.kind, got.inner.depth) == (
        "from-file", 7, False, "b", 2,
    )  # fmt: skip


def test_old_name_flags_and_yaml_values(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    app = _app(seen)
    res = runner.invoke(app, ["run", "--out", "o", "-n", "x", "--steps", "4", "--no-fast"])
    assert res.exit_code == 0, res.output
    assert seen[-1] == {"name": "x", "turns": 4, "fast": False}
    res = runner.invoke(app, ["run", "--out", "o", "-n", "x", "--steps", "4", "--turns", "6"])
    assert seen[-1]["turns"] == 6  # the field's own flag wins over its old name
    res = runner.invoke(app, ["run", "--out", "o", "-n", "x", "--params", "{a: [1, 2]}"])
    assert res.exit_code == 0 and seen[-1]["params"] == {"a": [1, 2]}
    res = runner.invoke(app, ["run", "--out", "o", "-n", "x", "--params", "{a: [1"])
    assert res.exit_code == 2 and "--params:1:" in res.output and "YAML syntax error" in res.output


def test_nested_flag_without_a_file_keeps_the_fields_own_default() -> None:
    # A default_factory may set fields away from the class defaults (evolve's base_sft).
    got = load_config(Demo, None, "demo", {"name": "x", "inner": {"kind": "b"}})
    assert got.inner == Inner(depth=9, kind="b")


def test_a_file_giving_a_field_and_its_old_name_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nturns: 2\nsteps: 3\n")
    with pytest.raises(ValueError, match="steps is another name of turns; give one of them"):
        load_config(Demo, cfg, "demo", {})
    cfg.write_text("name: x\nturnz: 2\n")
    with pytest.raises(ValueError, match="unknown key\\(s\\) turnz; valid keys are: fast, "):
        load_config(Demo, cfg, "demo", {})


def test_a_field_named_like_a_command_parameter_is_refused() -> None:
    with pytest.raises(TypeError, match="clash with config fields"):

        @config_flags(Demo)
        def bad(overrides: dict[str, Any], name: str = "") -> None: ...


def test_a_commands_own_old_spellings_are_hidden_flags_for_a_field() -> None:
    # old_flags: spellings a command had before its flags came from the config (not YAML keys).
    flags = {f.decls[0]: f for f in derive_flags(Demo, old_flags={"inner.depth": ["--levels"]})}
    assert flags["--levels"].path == ("inner", "depth")
    assert flags["--levels"].alias_of == "inner__depth" and flags["--levels"].option.hidden
    bools = derive_flags(Demo, old_flags={"fast": ["--quick"]})
    assert [f.decls for f in bools if f.alias_of == "fast"] == [("--quick",)]
    assert [f.option.param_decls for f in bools if f.alias_of == "fast"] == [
        ("--quick/--no-quick",)
    ]
    with pytest.raises(TypeError, match=r"old_flags name no field of Demo: \['inner.depht'\]"):
        derive_flags(Demo, old_flags={"inner.depht": ["--levels"]})

    seen: list[dict[str, Any]] = []
    app = typer.Typer()

    @app.command("run")
    @config_flags(Demo, old_flags={"inner.depth": ["--levels"], "fast": ["--quick"]})
    def run(overrides: dict[str, Any]) -> None:
        seen.append(overrides)

    app.command("other")(lambda: None)
    res = runner.invoke(app, ["run", "--levels", "4", "--no-quick"])
    assert res.exit_code == 0, res.output
    assert seen[-1] == {"inner": {"depth": 4}, "fast": False}
    res = runner.invoke(app, ["run", "--levels", "4", "--inner.depth", "6"])
    assert seen[-1] == {"inner": {"depth": 6}}  # the field's own flag wins
    assert "--levels" not in runner.invoke(app, ["run", "--help"]).output
