"""BabyAI levels (MiniGrid) as text environments: ``babyai/*-v1`` ids (extra ``palaestra[babyai]``).

Each id maps the three difficulties onto BabyAI levels of one kind (bigger
rooms, more distractors, more rooms); the environment lives in ``_env``,
imported only when an id is made.
"""

from __future__ import annotations

from palaestra.env._registry import register

_ENTRY = "palaestra.env.external.babyai._env:BabyAIEnv"

#: id -> (easy, medium, hard BabyAI level, our step limit)
LEVELS: dict[str, tuple[str, str, str, int]] = {
    "babyai/goto-redball-v1": (
        "BabyAI-GoToRedBallNoDists-v0",
        "BabyAI-GoToRedBallGrey-v0",
        "BabyAI-GoToRedBall-v0",
        64,
    ),
    "babyai/goto-obj-v1": ("BabyAI-GoToObjS4-v0", "BabyAI-GoToObjS6-v1", "BabyAI-GoToObj-v0", 64),
    "babyai/goto-local-v1": (
        "BabyAI-GoToLocalS5N2-v0",
        "BabyAI-GoToLocalS6N3-v0",
        "BabyAI-GoToLocal-v0",
        64,
    ),
    "babyai/pickup-loc-v1": (
        "BabyAI-PickupLoc-v0",
        "BabyAI-PickupLoc-v0",
        "BabyAI-PickupLoc-v0",
        64,
    ),
    "babyai/open-door-v1": (
        "BabyAI-OpenRedDoor-v0",
        "BabyAI-OpenDoor-v0",
        "BabyAI-OpenTwoDoors-v0",
        128,
    ),
    "babyai/put-next-local-v1": (
        "BabyAI-PutNextLocalS5N3-v0",
        "BabyAI-PutNextLocalS6N4-v0",
        "BabyAI-PutNextLocal-v0",
        128,
    ),
    "babyai/unlock-v1": (
        "BabyAI-UnlockLocal-v0",
        "BabyAI-Unlock-v0",
        "BabyAI-UnlockPickup-v0",
        256,
    ),
    "babyai/goto-v1": (
        "BabyAI-GoToObjMazeS4R2-v0",
        "BabyAI-GoToObjMazeS5-v0",
        "BabyAI-GoTo-v0",
        256,
    ),
}


def register_envs() -> None:
    for env_id, (easy, medium, hard, limit) in LEVELS.items():
        register(
            env_id,
            _ENTRY,
            max_episode_steps=limit,
            kwargs={"levels": {"easy": easy, "medium": medium, "hard": hard}},
            source="palaestra[babyai]",
        )
