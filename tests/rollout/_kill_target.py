"""A rollout that a test kills with SIGKILL at random points (run as a subprocess)."""

from __future__ import annotations

import sys
import time

from palaestra.env import ToyEnv, register
from palaestra.rollout import load_config, rollout


class SlowToy(ToyEnv):
    def _step(self, action: str):  # type: ignore[no-untyped-def]
        time.sleep(0.004)  # slow enough that a kill lands mid-run
        return super()._step(action)


if __name__ == "__main__":
    register("slowtoy-v1", SlowToy, max_episode_steps=30)
    cfg = load_config(
        None, env="slowtoy-v1", agent="random", n=40, epochs=2, concurrency=6, max_turns=8
    )
    rollout(cfg, sys.argv[1], progress=False)
    print("COMPLETE")
