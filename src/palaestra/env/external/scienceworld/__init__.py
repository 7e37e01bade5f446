"""ScienceWorld adapter (Wang et al., "ScienceWorld: Is your Agent Smarter than a 5th
Grader?", EMNLP 2022).

Registers one id per ScienceWorld task (``scienceworld/boil-v1``, ...); the
environment class lives in ``_env`` and imports ``scienceworld`` (a bundled
jar on Java 17) only when an id is made (``pip install "palaestra[scienceworld]"``
and ``apt-get install openjdk-17-jre-headless``).
"""

from __future__ import annotations

from palaestra.env._registry import register

#: ScienceWorld 1.2's 30 task names (``ScienceWorldEnv.get_task_names()``).
TASKS: tuple[str, ...] = (
    "boil",
    "change-the-state-of-matter-of",
    "chemistry-mix",
    "chemistry-mix-paint-secondary-color",
    "chemistry-mix-paint-tertiary-color",
    "find-animal",
    "find-living-thing",
    "find-non-living-thing",
    "find-plant",
    "freeze",
    "grow-fruit",
    "grow-plant",
    "identify-life-stages-1",
    "identify-life-stages-2",
    "inclined-plane-determine-angle",
    "inclined-plane-friction-named-surfaces",
    "inclined-plane-friction-unnamed-surfaces",
    "lifespan-longest-lived",
    "lifespan-longest-lived-then-shortest-lived",
    "lifespan-shortest-lived",
    "measure-melting-point-known-substance",
    "measure-melting-point-unknown-substance",
    "melt",
    "mendelian-genetics-known-plant",
    "mendelian-genetics-unknown-plant",
    "power-component",
    "power-component-renewable-vs-nonrenewable-energy",
    "test-conductivity",
    "test-conductivity-of-unknown-substances",
    "use-thermometer",
)


def register_envs() -> None:
    for task in TASKS:
        register(
            f"scienceworld/{task}-v1",
            "palaestra.env.external.scienceworld._env:ScienceWorldEnv",
            max_episode_steps=150,
            kwargs={"task_name": task},
            source="palaestra[scienceworld]",
        )
