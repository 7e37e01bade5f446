"""The shipped ``train rl`` configs load into ``RLRunConfig``, and the launch files they name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from palaestra.train import RLRunConfig, load_rl_config

CONFIGS = Path(__file__).parents[2] / "configs"
RL_CONFIGS = sorted(CONFIGS.glob("rl-*.yaml"))


def test_there_is_a_gpu_recipe() -> None:
    assert CONFIGS / "rl-gpu.yaml" in RL_CONFIGS


@pytest.mark.parametrize("path", RL_CONFIGS, ids=lambda p: p.name)
def test_rl_config_loads(path: Path) -> None:
    cfg = load_rl_config(path)
    assert isinstance(cfg, RLRunConfig)
    # Every key in the file is a field (a typo would fail above), and took its value.
    raw = yaml.safe_load(path.read_text())
    assert all(getattr(cfg, k) == v for k, v in raw.items() if k != "lora")


@pytest.mark.parametrize("path", RL_CONFIGS, ids=lambda p: p.name)
def test_the_accelerate_files_a_config_names_exist(path: Path) -> None:
    named = re.findall(r"configs/accelerate/[\w.-]+\.yaml", path.read_text())
    for name in named:
        launch = CONFIGS.parent / name
        assert launch.is_file(), f"{path.name} names {name}, which does not exist"
        assert yaml.safe_load(launch.read_text())["distributed_type"]


def test_the_gpu_recipe_uses_vllm_in_server_mode_with_lora() -> None:
    cfg = load_rl_config(CONFIGS / "rl-gpu.yaml")
    assert (cfg.use_vllm, cfg.vllm_mode, cfg.method) == (True, "server", "lora")
    assert cfg.save_steps > 0 and cfg.batch_size % cfg.num_generations == 0
