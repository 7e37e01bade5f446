"""The bad-input table: every case exits 2 with one or two lines that name the field or id.

Configs, flags, files, ids and missing extras, across the subcommands. No case may
print a traceback, a progress bar or a usage panel: the user sees ``error: ...`` and
what to change. (A missing torch on a core install is in ``test_first_contact.py``:
it needs a fresh interpreter.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import palaestra.env._registry as reg
from palaestra.cli import app
from palaestra.env import ToyEnv, register

runner = CliRunner()
HINT = 'pip install "palaestra[foo]"'

#: name -> content of the files the cases refer to as {name}; {tmp} is the folder.
FILES: dict[str, str | bytes] = {
    "unknown.yaml": "agnet: random\n",
    "syntax.yaml": "env: house-v1\nagent: [expert\nn: 3\n",
    "list.yaml": "- a\n- b\n",
    "badval.yaml": "env: house-v1\nn: many\n",
    "binary.yaml": b"\xff\xfe\x00bad",
    "evo_unknown.yaml": "envs: [house-v1]\nitrations: 1\n",
    "evo_badval.yaml": "envs: [house-v1]\niterations: -1\n",
    "evo_curriculum.yaml": "envs: [house-v1]\ncurriculum: {low: 0.9, high: 0.1}\n",
    "evo_pairs.yaml": "envs: [house-v1]\ndata: {pairs: true}\n",
    "sft_unknown.yaml": "lr: 1\n",
    "sft_badval.yaml": "learning_rate: -1\n",
    "suite_syntax.yaml": "id: x-v1\nentries: [\n",
    "suite_badenv.yaml": "id: my-v1\nentries:\n  - env: nope-v1\n    n: 2\n",
    "suite_noextra.yaml": "id: my-v1\nentries:\n  - env: foo/bar-v1\n    n: 2\n",
    "data.txt": "not a dataset\n",
}

OUT = ["--out", "{tmp}/out"]

# (args, what the one or two lines must name)
CASES: list[tuple[list[str], str]] = [
    # ---- config files ------------------------------------------------------------------
    (
        ["rollout", "--config", "{tmp}/missing.yaml", *OUT],
        "config file {tmp}/missing.yaml does not",
    ),
    (["rollout", "--config", "{tmp}", *OUT], "config file {tmp} does not exist"),
    (["rollout", "--config", "{tmp}/unknown.yaml", *OUT], "unknown key(s) agnet"),
    (
        ["rollout", "--config", "{tmp}/syntax.yaml", *OUT],
        "{tmp}/syntax.yaml:3:2: YAML syntax error",
    ),
    (["rollout", "--config", "{tmp}/list.yaml", *OUT], "must hold a mapping"),
    (["rollout", "--config", "{tmp}/badval.yaml", *OUT], "n: Input should be a valid integer"),
    (["rollout", "--config", "{tmp}/binary.yaml", *OUT], "{tmp}/binary.yaml: not a UTF-8 text"),
    (["eval", "--config", "{tmp}/unknown.yaml", *OUT], "unknown key(s) agnet"),
    (["eval", "--config", "{tmp}/syntax.yaml", *OUT], "{tmp}/syntax.yaml:3:2: YAML syntax error"),
    (
        ["train", "sft", "-c", "{tmp}/sft_unknown.yaml", "-m", "tiny", "-d", "{tmp}", *OUT],
        "unknown key(s) lr",
    ),
    (
        ["train", "sft", "-c", "{tmp}/sft_badval.yaml", "-m", "tiny", "-d", "{tmp}", *OUT],
        "learning_rate: Input should be greater than 0",
    ),
    (
        ["train", "dpo", "-c", "{tmp}/syntax.yaml", "-m", "tiny", "-d", "{tmp}", *OUT],
        "{tmp}/syntax.yaml:3:2: YAML syntax error",
    ),
    (["evolve", "{tmp}/evo_unknown.yaml", *OUT], "unknown key(s) itrations"),
    (["evolve", "{tmp}/evo_badval.yaml", *OUT], "iterations: Input should be greater than"),
    (["evolve", "{tmp}/syntax.yaml", *OUT], "{tmp}/syntax.yaml:3:2: YAML syntax error"),
    (["evolve", "{tmp}/missing.yaml", *OUT], "config file {tmp}/missing.yaml does not exist"),
    (["evolve", "{tmp}/evo_curriculum.yaml", *OUT], "curriculum.low (0.9) must be below high"),
    (["evolve", "{tmp}/evo_pairs.yaml", *OUT], "data.pairs needs a dpo section"),
    # ---- flags -------------------------------------------------------------------------
    (["rollout", "--env", "house-v1", "--agent", "expert", "--split", "dev", *OUT], "split:"),
    (
        ["rollout", "--env", "house-v1", "--agent", "expert", "--difficulty", "x", *OUT],
        "difficulty:",
    ),
    (["rollout", "--env", "house-v1", "--agent", "expert", "--n", "-1", *OUT], "n: Input should"),
    (["rollout", "--env", "house-v1", "--agent", "nope", *OUT], "unknown agent 'nope'"),
    (["rollout", "--env", "house-v1", *OUT], "agent 'react' needs --model"),
    (["rollout", "--env", "house-v1", "--agent", "expert", "--backend", "x", *OUT], "backend:"),
    (
        ["rollout", "--env", "house-v1", "--model", "tiny", "--temperature", "-1", *OUT],
        "temperature: Input should be greater than or equal to 0",
    ),
    (["eval", "--agent", "expert", "--suite", "heldin-v1", "--epochs", "0", *OUT], "epochs:"),
    (["eval", "--agent", "nope", "--suite", "heldin-v1", *OUT], "agent: unknown agent 'nope'"),
    (["envs", "show", "house-v1", "--split", "dev"], "--split must be one of"),
    (["envs", "play", "house-v1", "--difficulty", "x"], "--difficulty must be one of"),
    (["runs", "export", "{tmp}", "--format", "csv"], "--format must be one of"),
    (["demo", "--split", "x"], "--split must be one of"),
    (["model", "build-tiny", "--pretrain"], "--pretrain needs --out DIR"),
    (["train", "sft", "--method", "x", "-m", "tiny", "-d", "{tmp}", *OUT], "method: Input should"),
    (["evolve", "--env", "house-v1", "--iterations", "-1", *OUT], "iterations: Input should"),
    (["evolve", "--env", "house-v1", "--concurrency", "0", *OUT], "concurrency: Input should"),
    (["report", "{tmp}/norun", "--alpha", "2"], "--alpha must be between 0 and 1"),
    (["serve-env", "--isolation", "x"], "--isolation must be one of"),
    # ---- files and folders ---------------------------------------------------------------
    (["runs", "show", "{tmp}/norun"], "{tmp}/norun is not a run directory"),
    (["runs", "export", "{tmp}/norun"], "{tmp}/norun is not a run directory"),
    (["view", "{tmp}/norun"], "{tmp}/norun does not exist"),
    (["view", "{tmp}/unknown.yaml"], "is not a directory"),
    (["report", "{tmp}/norun"], "{tmp}/norun is not a run directory"),
    (["data", "sft", "{tmp}/norun", *OUT], "{tmp}/norun is not a run directory"),
    (["train", "sft", "-m", "tiny", "-d", "{tmp}/nodata", *OUT], "--data {tmp}/nodata does not"),
    (["train", "sft", "-m", "tiny", "-d", "{tmp}/data.txt", *OUT], "is not a dataset folder"),
    (["merge", "{tmp}/noadapter", *OUT], "{tmp}/noadapter holds no LoRA adapter"),
    (["eval", "--agent", "expert", "--suite", "{tmp}/missing.yaml", *OUT], "does not exist"),
    (["eval", "--agent", "expert", "--suite", "{tmp}/suite_badenv.yaml", *OUT], "entries.0.env"),
    # ---- ids -------------------------------------------------------------------------------
    (["envs", "show", "hose-v1"], "did you mean house-v1?"),
    (["envs", "play", "toy-v2"], "did you mean toy-v1?"),
    (["envs", "check", "nope-v1"], "no environment 'nope-v1'"),
    (["demo", "nope-v1"], "no environment 'nope-v1'"),
    (["rollout", "--env", "hose-v1", "--agent", "expert", *OUT], "did you mean house-v1?"),
    (["rollout", "--env", "house-v1", "--model", "nope/x", *OUT], "unknown model id 'nope/x'"),
    (["rollout", "--env", "house-v1", "--model", "hf", *OUT], "model id 'hf' needs a name"),
    (["eval", "--suite", "nope", "--agent", "expert", *OUT], "no suite 'nope'"),
    (["eval", "--model", "nope/x", "--suite", "heldin-v1", *OUT], "unknown model id 'nope/x'"),
    (["eval", "--model", "tiny/huge", "--suite", "heldin-v1", *OUT], "unknown tiny preset 'huge'"),
    (["train", "sft", "-m", "nope", "-d", "{tmp}", *OUT], "model 'nope'"),
    (
        ["evolve", "--env", "hose-v1", *OUT],
        "envs: unknown environment 'hose-v1'; did you mean house-v1",
    ),
    (["evolve", "--env", "house-v1", "--model", "nope", *OUT], "model: 'nope' is not a base model"),
    (["evolve", "--env", "house-v1", "--model", "tiny/huge", *OUT], "unknown tiny preset"),
    # ---- extras missing --------------------------------------------------------------------
    (["envs", "show", "foo/bar-v1"], HINT),
    (["envs", "play", "foo/bar-v1"], HINT),
    (["envs", "check", "foo/bar-v1"], HINT),
    (["demo", "foo/bar-v1"], HINT),
    (["rollout", "--env", "foo/bar-v1", "--agent", "expert", *OUT], HINT),
    (["evolve", "--env", "foo/bar-v1", *OUT], HINT),
    (["eval", "--agent", "expert", "--suite", "{tmp}/suite_noextra.yaml", *OUT], HINT),
]


@pytest.fixture(autouse=True)
def _registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg.registry()))
    register("toy-v1", ToyEnv, max_episode_steps=20)
    (tmp_path / "palaestra_test_noextra.py").write_text(
        f"raise ImportError('Foo environments need the foo package: {HINT}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register("foo/bar-v1", "palaestra_test_noextra:FooEnv", source="palaestra[foo]")
    for name, content in FILES.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    yield


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


#: A message built outside the CLI (the suite parser), checked through it.
PENDING = [
    pytest.param(
        ["eval", "--agent", "expert", "--suite", "{tmp}/suite_syntax.yaml", *OUT],
        "{tmp}/suite_syntax.yaml:3:1: YAML syntax error",
        id="eval --suite syntax-error",
    )
]


@pytest.mark.parametrize(
    ("args", "needle"),
    [*(pytest.param(a, n, id=" ".join(a).replace("{tmp}/", "")) for a, n in CASES), *PENDING],
)
def test_bad_input(args: list[str], needle: str, tmp_path: Path) -> None:
    tmp = str(tmp_path)
    res = runner.invoke(app, [a.replace("{tmp}", tmp) for a in args])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    assert 1 <= len(lines) <= 2, res.output
    assert lines[0].startswith("error: "), res.output
    assert needle.replace("{tmp}", tmp) in res.output, res.output
