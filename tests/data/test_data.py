"""Data builders: SFT filtering/dedup/mixing, refinement masking, DPO pairs, cards, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from palaestra.data import (
    build_pairs,
    build_refine,
    build_refine_synthetic,
    build_sft,
    load_card,
    load_general,
    save,
)
from palaestra.data._general import generate
from palaestra.model import ScriptedModel
from palaestra.rollout import load_config, rollout
from palaestra.trajectory import RunStore

ENV = "shop-v1"
BAD = "Thought: I will fly.\nAction: fly away"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {k: root / k for k in ("expert", "expert2", "random", "bad")}
    rollout(load_config(None, env=ENV, agent="expert", n=4), out["expert"], progress=False)
    # the same tasks again: duplicates for dedup
    rollout(load_config(None, env=ENV, agent="expert", n=2), out["expert2"], progress=False)
    rollout(
        load_config(None, env=ENV, agent="random", n=4, attempts=3, max_steps=6),
        out["random"],
        progress=False,
    )
    # a model that only says an impossible action: every turn is an invalid_action
    bad = ScriptedModel(lambda conv: BAD)
    rollout(
        load_config(None, env=ENV, agent="react", model="scripted", n=2, max_steps=3),
        out["bad"],
        model=bad,
        progress=False,
    )
    return out


def _assistant(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in row["messages"] if m["role"] == "assistant"]


# ---- sft ------------------------------------------------------------------------------


def test_sft_keeps_successes_dedups_and_trains_agent_turns(stores: dict[str, Path]) -> None:
    ds, card = build_sft([stores["expert"], stores["expert2"], stores["random"], stores["bad"]])
    with RunStore(stores["random"], readonly=True) as s:
        random_wins = {e.task.task_id for e in s.episodes() if e.score >= 1.0}
    assert random_wins  # the random agent solved something: a real duplicate to drop
    assert len(ds) == 4  # one per task: expert solved all 4
    assert len(set(ds["task_id"])) == len(ds)
    with RunStore(stores["random"], readonly=True) as s:
        n_random = sum(e.score >= 1.0 for e in s.episodes())
    assert card.counts["successful"] == 4 + 2 + n_random
    assert card.counts["duplicates_dropped"] == card.counts["successful"] - 4
    assert random_wins <= set(ds["task_id"])
    for row in ds:
        for m in row["messages"]:
            assert (m["train"] is True) == (m["role"] == "assistant")
            assert m["role"] == "assistant" or m["train"] is None
    assert card.tokens is not None and 0 < card.tokens.trained < card.tokens.total


def test_sft_mixes_general_chat_at_ratio(stores: dict[str, Path]) -> None:
    ds, card = build_sft([stores["expert"]], mix_ratio=0.5)
    assert card.counts["agent_rows"] == 4 and card.counts["general_rows"] == 4
    assert sum(e == "general" for e in ds["env_id"]) == 4
    ds2, _ = build_sft([stores["expert"]], mix_ratio=0.5)
    assert ds2["task_id"] == ds["task_id"]  # deterministic
    with pytest.raises(ValueError):
        build_sft([stores["expert"]], mix_ratio=1.0)


def test_general_file_matches_generator_and_user_files_load(tmp_path: Path) -> None:
    assert load_general() == generate()
    assert len(generate()) == 200
    f = tmp_path / "chat.jsonl"
    f.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                ]
            }
        )
        + "\n"
    )
    assert load_general(f) == [
        [
            {"role": "user", "content": "hi", "train": None},
            {"role": "assistant", "content": "hello", "train": True},
        ]
    ]
    from datasets import Dataset

    Dataset.from_list([{"messages": load_general(f)[0]}]).save_to_disk(str(tmp_path / "hf"))
    assert load_general(tmp_path / "hf") == load_general(f)


# ---- refine ----------------------------------------------------------------------------


def test_refine_with_expert_teacher_masks_errors(stores: dict[str, Path]) -> None:
    ds, card = build_refine([stores["bad"]], types=["invalid_action"], max_errors=2)
    assert card.counts["ok"] == 2 and len(ds) == 2
    for row in ds:
        turns = _assistant(row)
        errors = [m for m in turns if m["content"] == BAD]
        assert len(errors) == 2 and all(m["train"] is False for m in errors)
        correction = turns[len(errors)]
        assert correction["train"] is True and "not possible here" in correction["content"]
        assert all(m["train"] for m in turns[len(errors) :])
        assert "score 1.00" in row["messages"][-1]["content"]  # the oracle finished the task
        assert row["n_errors"] == 2 and row["error_types"] == ["invalid_action"] * 2
    # the ablation: the same samples, the corrected turn kept in context without loss
    ds2, card2 = build_refine(
        [stores["bad"]], types=["invalid_action"], max_errors=2, correction=False
    )
    assert card2.parameters["correction"] is False and len(ds2) == 2
    for row, row2 in zip(ds, ds2, strict=True):
        turns, turns2 = _assistant(row), _assistant(row2)
        assert [m["content"] for m in turns] == [m["content"] for m in turns2]
        assert turns2[2]["train"] is False and all(m["train"] for m in turns2[3:])


def test_refine_skips_types_not_asked_and_clean_episodes(stores: dict[str, Path]) -> None:
    ds, card = build_refine([stores["bad"], stores["expert"]], types=["loop"], max_errors=1)
    # the bad model repeats itself from its 2nd turn: one loop error in context
    assert card.counts["no_error"] == 4 and len(ds) == 2
    assert all(r["error_types"] == ["loop"] for r in ds)
    with pytest.raises(ValueError):
        build_refine([stores["bad"]], types=["typo"])  # type: ignore[list-item]


def test_refine_with_model_teacher(stores: dict[str, Path]) -> None:
    fix = "Thought: Searching is always possible.\nAction: search[mug]"
    teacher = ScriptedModel(lambda conv: fix)
    ds, card = build_refine([stores["bad"]], teacher=teacher, types=["invalid_action"])
    assert len(ds) == 2 and card.parameters["teacher"] == "scripted"
    # the teacher saw the erroneous turn and the environment's feedback
    assert teacher.calls[0][-2].content == BAD and teacher.calls[0][-1].role == "user"
    for row in ds:
        turns = _assistant(row)
        assert turns[0]["content"] == BAD and turns[0]["train"] is False
        assert turns[1] == {"role": "assistant", "content": fix, "train": True}


def test_refine_model_teacher_bad_corrections_are_dropped(stores: dict[str, Path]) -> None:
    ds, card = build_refine([stores["bad"]], teacher=ScriptedModel(lambda conv: BAD))
    assert len(ds) == 0 and card.counts["bad_correction"] == 2


def test_synthetic_refine_injects_real_feedback(stores: dict[str, Path]) -> None:
    ds, card = build_refine_synthetic([stores["expert"]], per_episode=3, seed="t")
    assert card.counts["ok"] == len(ds) >= 10
    kinds = {k for r in ds for k in r["error_types"]}
    assert kinds >= {"wrong_action", "format_error"}
    for row in ds:
        turns = _assistant(row)
        wrong = [m for m in turns if m["train"] is False]
        assert len(wrong) == 1
        i = row["messages"].index(wrong[0])
        feedback = row["messages"][i + 1]["content"]
        assert feedback  # the environment's (or the format checker's) real reply
        assert row["messages"][i + 2]["train"] is True
        assert "score 1.00" in row["messages"][-1]["content"]
    again, _ = build_refine_synthetic([stores["expert"]], per_episode=3, seed="t")
    assert again["messages"] == ds["messages"]


def test_refine_mask_on_tokens_with_tiny_chat_template(stores: dict[str, Path]) -> None:
    """The issue's acceptance test: erroneous turns are masked out of the loss, corrections not."""
    from palaestra.model import get_model

    tok: Any = get_model("tiny").tokenizer  # type: ignore[attr-defined]
    ds, _ = build_refine([stores["bad"]], types=["invalid_action"])
    row = ds[0]
    enc = tok.apply_chat_template(
        row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = enc["input_ids"], enc["assistant_masks"]

    def span(text: str) -> list[int]:
        piece = tok.encode(text, add_special_tokens=False)
        for s in range(len(ids) - len(piece) + 1):
            if ids[s : s + len(piece)] == piece:
                return mask[s : s + len(piece)]
        raise AssertionError(f"{text!r} not found in the tokens")

    turns = _assistant(row)
    assert turns[0]["content"] == BAD
    assert set(span(BAD)) == {0}
    assert set(span(turns[1]["content"])) == {1}
    assert set(span(row["messages"][1]["content"])) == {0}  # observations never train
    assert 0 < sum(mask) < len(mask)


# ---- pairs -----------------------------------------------------------------------------


def test_pairs_trajectory_and_step(stores: dict[str, Path]) -> None:
    ds, card = build_pairs([stores["expert"], stores["random"]])
    assert card.counts["trajectory_pairs"] > 0 and card.counts["step_pairs"] > 0
    assert set(ds["kind"]) == {"trajectory", "step"}
    for r in ds:
        assert len(r["chosen"]) == 1 and r["chosen"][0]["role"] == "assistant"
        assert len(r["rejected"]) == 1 and r["rejected"][0]["role"] == "assistant"
        assert r["chosen"] != r["rejected"]
        assert r["prompt"][0]["role"] == "system" and r["prompt"][-1]["role"] == "user"
        assert r["chosen_value"] > r["rejected_value"]
    step = [r for r in ds if r["kind"] == "step"]
    assert all(r["chosen_value"] - r["rejected_value"] >= 0.5 for r in step)
    # expert-only runs have no failures: nothing to prefer
    none, c = build_pairs([stores["expert"]])
    assert len(none) == 0 and c.counts["rows"] == 0


# ---- cards and CLI -------------------------------------------------------------------------


def test_save_writes_dataset_and_card(stores: dict[str, Path], tmp_path: Path) -> None:
    from datasets import load_from_disk

    ds, card = build_sft([stores["expert"]])
    out = save(ds, card, tmp_path / "sft")
    assert len(load_from_disk(str(out))) == len(ds)
    assert load_card(out).counts == card.counts
    readme = (out / "README.md").read_text()
    assert str(stores["expert"]) in readme and "| rows | 4 |" in readme


def test_cli_commands(stores: dict[str, Path], tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from palaestra.cli.data import data_app

    app = typer.Typer()
    app.add_typer(data_app, name="data")
    r = CliRunner()
    res = r.invoke(app, ["data", "sft", str(stores["expert"]), "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert load_card(tmp_path / "s").counts["rows"] == 4
    res = r.invoke(
        app, ["data", "refine", str(stores["expert"]), "--synthetic", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert load_card(tmp_path / "r").counts["rows"] == 4
    res = r.invoke(
        app,
        [
            "data",
            "pairs",
            str(stores["expert"]),
            str(stores["random"]),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert load_card(tmp_path / "p").counts["rows"] > 0
    res = r.invoke(app, ["data", "sft", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "not a run directory" in res.output


def test_refine_corrections_follow_the_act_prompt_style(tmp_path: Path) -> None:
    from palaestra.agent import ExpertAgent
    from palaestra.data import build_refine_synthetic
    from palaestra.env import make, tasks
    from palaestra.rollout import RolloutEngine

    env_id = "house-v1"
    suite = tasks(env_id, "train", n=4, difficulty="easy", contents_visible=True)
    engine = RolloutEngine(ExpertAgent(prompt="act", max_steps=20), lambda: make(env_id), None)
    run = tmp_path / "run"
    with RunStore(run) as store:
        for ep in engine.run(suite):
            store.add(ep)
    ds, card = build_refine_synthetic([run], types=("wrong_action", "format_error"))
    assert len(ds) >= 3, card.counts
    for row in ds:
        turns = [m for m in row["messages"] if m["role"] == "assistant"]
        wrong = [m for m in turns if m["train"] is False]
        assert len(wrong) == 1
        assert all(m["content"].startswith("Action: ") for m in turns if m["train"])
        assert all("Thought" not in m["content"] for m in row["messages"])
