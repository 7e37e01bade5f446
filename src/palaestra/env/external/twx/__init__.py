"""TextWorld-Express adapter (Jansen & Côté, "TextWorldExpress: Simulating Text Games at One
Million Steps Per Second", EACL 2023 demo).

Registers one id per TextWorld-Express game; the environment class lives in
``_env`` and imports ``textworld_express`` (which drives a JVM) only when an
id is made (``pip install "palaestra[twx]"`` and Java 17,
``apt-get install openjdk-17-jre-headless``).
"""

from __future__ import annotations

from palaestra.env._registry import register

#: id -> (TextWorld-Express game name, step limit).
GAME_IDS: dict[str, tuple[str, int]] = {
    "twx/cookingworld-v1": ("cookingworld", 80),
    "twx/coin-v1": ("coin", 60),
    "twx/twc-v1": ("twc", 60),
    "twx/mapreader-v1": ("mapreader", 60),
    "twx/arithmetic-v1": ("arithmetic", 30),
    "twx/sorting-v1": ("sorting", 30),
    "twx/simonsays-v1": ("simonsays", 30),
    "twx/peckingorder-v1": ("peckingorder", 40),
}


def register_envs() -> None:
    for env_id, (game, limit) in GAME_IDS.items():
        register(
            env_id,
            "palaestra.env.external.twx._env:TextWorldExpressEnv",
            max_episode_steps=limit,
            kwargs={"game": game},
            source="palaestra[twx]",
        )
