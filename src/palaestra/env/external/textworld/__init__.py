"""TextWorld adapter (Côté et al., "TextWorld: A Learning Environment for Text-based Games", 2018).

Registers one id per TextWorld challenge; the environment class lives in
``_env`` and imports ``textworld`` only when an id is made
(``pip install "palaestra[textworld]"``).
"""

from __future__ import annotations

from palaestra.env._registry import register

#: id -> (TextWorld challenge, step limit).
CHALLENGE_IDS: dict[str, tuple[str, int]] = {
    "textworld/simple-v1": ("tw-simple", 50),
    "textworld/cooking-v1": ("tw-cooking", 80),
    "textworld/coin-collector-v1": ("tw-coin_collector", 80),
    "textworld/treasure-hunter-v1": ("tw-treasure_hunter", 80),
}


def register_envs() -> None:
    for env_id, (challenge, limit) in CHALLENGE_IDS.items():
        register(
            env_id,
            "palaestra.env.external.textworld._env:TextWorldEnv",
            max_episode_steps=limit,
            kwargs={"challenge": challenge},
            source="palaestra[textworld]",
        )
