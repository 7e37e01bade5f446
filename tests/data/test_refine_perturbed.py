"""`data refine` over eval runs of perturbed suites: the replay runs under the same wrappers."""

from __future__ import annotations

from pathlib import Path

import pytest

from palaestra.data import build_refine, build_refine_synthetic
from palaestra.eval._run import EvalConfig, evaluate

# The house-v1 slices of recovery-v1 and perturbed-v1 (the built-in suites, cut to 3 tasks).
SUITE = """
id: house-perturbed-v1
entries:
  - {env: house-v1, split: test, n: 3, perturbations: [inject_mistake], group: recovery}
  - {env: house-v1, split: test, n: 3, perturbations: [rename_verbs], group: perturbed}
  - {env: house-v1, split: test, n: 3, perturbations: [shuffle_actions], group: perturbed}
  - {env: house-v1, split: test, n: 3, perturbations: [paraphrase_instruction], group: perturbed}
  - {env: house-v1, split: test, n: 3, perturbations: [distractors], group: perturbed, perturbation_seed: 4}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("refine-perturbed")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    out: dict[str, Path] = {}
    for agent in ("random", "expert"):
        out[agent] = root / agent
        config = EvalConfig(
            suite=str(suite), agent=agent, max_steps=12 if agent == "random" else 60
        )
        evaluate(config, out[agent], progress=False)
    return out


def test_refine_replays_perturbed_eval_episodes(runs: dict[str, Path]) -> None:
    ds, card = build_refine([runs["random"]], max_errors=2)
    assert card.counts["episodes"] == 15
    assert card.counts.get("replay_mismatch", 0) == 0, card.counts
    assert card.counts["ok"] == len(ds) == 15  # each random episode errs and is corrected


def test_synthetic_refine_replays_perturbed_eval_episodes(runs: dict[str, Path]) -> None:
    ds, card = build_refine_synthetic([runs["expert"]], per_episode=2, seed="p")
    assert card.counts["successful"] == 15
    assert card.counts.get("replay_mismatch", 0) == 0, card.counts
    assert len(ds) > 0
