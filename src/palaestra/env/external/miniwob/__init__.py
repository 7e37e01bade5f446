"""MiniWoB++ (Liu et al., ICLR 2018; Farama ``miniwob``) as ``miniwob/<task>-v1`` ids.

Registration only: nothing third-party is imported here. The environment
lives in :mod:`palaestra.env.external.miniwob._env`; it needs the
``miniwob`` extra (the Farama wheel for the task HTML, Playwright) and a
Chromium binary (Debian ``chromium``).
"""

from __future__ import annotations

#: Registered MiniWoB++ tasks (each has an expert) → step limit of an episode.
TASKS: dict[str, int] = {
    "click-test": 10,
    "click-test-2": 10,
    "click-button": 10,
    "click-link": 10,
    "click-option": 15,
    "click-checkboxes": 20,
    "click-dialog": 10,
    "click-dialog-2": 10,
    "click-tab": 10,
    "click-widget": 10,
    "enter-text": 15,
    "enter-text-2": 15,
    "enter-password": 15,
    "focus-text": 10,
    "focus-text-2": 10,
    "login-user": 15,
    "choose-list": 15,
}


def register_envs() -> None:
    from palaestra.env._registry import register

    for name, steps in TASKS.items():
        register(
            f"miniwob/{name}-v1",
            "palaestra.env.external.miniwob._env:MiniWoBEnv",
            max_episode_steps=steps,
            kwargs={"task": name},
            source="palaestra[miniwob]",
        )
