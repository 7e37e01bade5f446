"""TextWorld-Express games on the Palaestra contract (Jansen & Côté, "TextWorldExpress:
Simulating Text Games at One Million Steps Per Second", EACL 2023 demo;
https://github.com/cognitiveailab/TextWorldExpress, Apache-2.0).

One JVM (``textworld_express.TextWorldExpressEnv``, py4j) per environment
instance, started on first use and reused by every episode; ``close()``
stops it.

- Splits: TextWorld-Express has 1000 seeds per fold (train 0-999, dev
  10000-10999, test 20000-20999). Our train → its train fold, test → dev,
  heldout → test; our seed indexes the fold (modulo its size, so seeds
  0 and 1000 are the same game).
- Difficulty maps to the game's generation parameters (``GAME_PARAMS``);
  ``arithmetic``, ``sorting`` and ``peckingorder`` take none, so their
  difficulties share one game distribution.
- Actions: the game's ``validActions`` are ``available_actions()``; any other
  command is rejected with feedback listing them, without reaching the game.
- Reward 1.0 on success, else 0; ``progress()`` is the game's normalised score
  clipped to [0, 1]; ``taskfailure`` terminates with success False.
- Expert: the game's gold path, generated from the start of the episode.
  TextWorld-Express has no planner from an arbitrary state, so the expert
  follows the gold path while the episode stays on it; information actions
  that change nothing (``look around``, ``inventory``, ``examine X``, ``task``)
  do not count as leaving it. After any other deviation there is no oracle
  and the expert answers ``look around`` (documented limitation:
  ``check_env``'s "expert after random actions" check fails for that reason).
- Snapshot: the default replay from the seed (the games are deterministic;
  a step costs < 1 ms).
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from palaestra.env._core import Difficulty, EnvError, Environment, Observation, Split, Task

try:
    from textworld_express import TextWorldExpressEnv as _TWX
except ImportError as e:  # pragma: no cover - exercised with the import blocked
    raise ImportError(
        "TextWorld-Express environments need the textworld-express package and Java 17: "
        'pip install "palaestra[twx]" and apt-get install openjdk-17-jre-headless'
    ) from e

GAME_PARAMS: dict[str, dict[Difficulty, str]] = {
    "cookingworld": {
        "easy": "numLocations=1,numIngredients=1,numDistractorItems=0,includeDoors=0,limitInventorySize=0",
        "medium": "numLocations=3,numIngredients=2,numDistractorItems=2,includeDoors=1,limitInventorySize=0",
        "hard": "numLocations=6,numIngredients=3,numDistractorItems=5,includeDoors=1,limitInventorySize=0",
    },
    "coin": {
        "easy": "numLocations=3,numDistractorItems=0,includeDoors=0,limitInventorySize=0",
        "medium": "numLocations=6,numDistractorItems=2,includeDoors=1,limitInventorySize=0",
        "hard": "numLocations=11,numDistractorItems=5,includeDoors=1,limitInventorySize=0",
    },
    "twc": {
        "easy": "numLocations=1,numItemsToPutAway=2,includeDoors=0,limitInventorySize=0",
        "medium": "numLocations=2,numItemsToPutAway=3,includeDoors=0,limitInventorySize=0",
        "hard": "numLocations=3,numItemsToPutAway=4,includeDoors=1,limitInventorySize=0",
    },
    "mapreader": {
        "easy": "numLocations=4,maxDistanceApart=2,maxDistractorItemsPerLocation=0,includeDoors=0,limitInventorySize=0",
        "medium": "numLocations=8,maxDistanceApart=4,maxDistractorItemsPerLocation=2,includeDoors=0,limitInventorySize=0",
        "hard": "numLocations=15,maxDistanceApart=5,maxDistractorItemsPerLocation=3,includeDoors=0,limitInventorySize=0",
    },
    "arithmetic": {"easy": "", "medium": "", "hard": ""},
    "sorting": {"easy": "", "medium": "", "hard": ""},
    "simonsays": {
        "easy": "gameLength=3,numDistractors=2,memorization=0",
        "medium": "gameLength=6,numDistractors=4,memorization=0",
        "hard": "gameLength=10,numDistractors=5,memorization=0",
    },
    "peckingorder": {"easy": "", "medium": "", "hard": ""},
}

_FOLD: dict[Split, str] = {"train": "train", "test": "dev", "heldout": "test"}
_INERT_PREFIXES = ("look around", "inventory", "examine ", "task")


class TextWorldExpressEnv(Environment):
    description = (
        "TextWorld-Express: fast re-implementations of CookingWorld, TextWorld Commonsense "
        "(tidy objects away), Coin Collector, plus Map Reader, Arithmetic, Sorting, Simon "
        "Says and Pecking Order; parser games with a list of valid actions per state."
    )
    action_help = (
        "look around | inventory | move north/south/east/west | open/close door to DIR | "
        "take X | put X in Y | read X | examine X | cook X in Y | slice/dice/chop X | "
        "prepare meal | eat meal (the valid actions are listed in every state)"
    )
    action_verbs = ("move", "open", "close", "take", "put", "read", "examine", "cook", "eat")

    def __init__(self, game: str) -> None:
        super().__init__()
        if game not in GAME_PARAMS:
            raise ValueError(f"unknown TextWorld-Express game {game!r}; one of {list(GAME_PARAMS)}")
        self.game = game
        self._twx: Any = None
        self._folds: dict[str, list[int]] = {}
        self._infos: dict[str, Any] = {}
        self._gold: list[str] = []
        self._gold_pos = 0
        self._off_gold = False

    # ---- the JVM --------------------------------------------------------------------

    def _server(self) -> Any:
        if self._twx is None:
            try:
                self._twx = _TWX(envStepLimit=10**9)  # our StepLimit wrapper truncates
                self._folds = {
                    "train": list(self._twx.getValidSeedsTrain()),
                    "dev": list(self._twx.getValidSeedsDev()),
                    "test": list(self._twx.getValidSeedsTest()),
                }
            except Exception as e:
                self._twx = None
                raise EnvError(
                    f"TextWorld-Express failed to start its JVM ({e}); is Java 17 installed "
                    "(java -version; apt-get install openjdk-17-jre-headless)?"
                ) from e
        return self._twx

    def _start(self, split: Split, difficulty: Difficulty, seed: int) -> dict[str, Any]:
        server = self._server()
        fold = _FOLD[split]
        seeds = self._folds[fold]
        try:
            _, infos = server.reset(
                seed=seeds[seed % len(seeds)],
                gameFold=fold,
                gameName=self.game,
                gameParams=GAME_PARAMS[self.game][difficulty],
                generateGoldPath=True,
            )
            self._gold = [str(a) for a in server.getGoldActionSequence()]
        except Exception as e:
            raise EnvError(f"TextWorld-Express failed to reset {self.game}: {e}") from e
        return dict(infos)

    # ---- tasks ----------------------------------------------------------------------

    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        if params:
            raise ValueError(f"twx environments take no params, got {sorted(params)}")
        # The JVM holds one game: put back an episode in progress after peeking at this one.
        snap = self.snapshot() if self.task is not None else None
        infos = self._start(split, difficulty, seed)
        if snap is not None:
            self.restore(snap)
        return self._new_task(seed, split, difficulty, {}, str(infos["taskDescription"]).strip())

    # ---- episode ---------------------------------------------------------------------

    def _reset(self, task: Task) -> str:
        self._infos = self._start(task.split, task.difficulty, task.seed)
        self._gold_pos = 0
        self._off_gold = False
        return (
            f"{task.instruction}\n\n{str(self._infos['observation']).strip()}\n\n"
            f"Actions look like: {self.action_help}"
        )

    def _step(self, action: str) -> Observation:
        valid = self.available_actions()
        if action not in valid:
            lowered = {a.lower(): a for a in valid}
            if action.lower() not in lowered:
                return self.reject(
                    f"{action[:80]!r} is not a valid action here. Valid actions: "
                    + ", ".join(sorted(valid))
                    + "."
                )
            action = lowered[action.lower()]
        self._track_gold(action)
        try:
            obs, _, _, infos = self._server().step(action)
        except Exception as e:
            raise EnvError(f"TextWorld-Express failed on {action!r}: {e}") from e
        self._infos = dict(infos)
        text = str(obs).strip() or "Nothing happens."
        info: dict[str, Any] = {"score": float(infos["score"])}
        if infos["tasksuccess"]:
            return Observation(
                text=text, reward=1.0, terminated=True, info={**info, "success": True}
            )
        if infos["taskfailure"]:
            return Observation(text=text, terminated=True, info={**info, "success": False})
        return Observation(text=text, info=info)

    def _next_gold(self) -> int:
        """Index of the next gold action to take, skipping stale open/close steps.

        TextWorld-Express's gold path sometimes repeats ``open X`` for a container
        that is already open (e.g. cookingworld hard); such a step is not valid in
        the current state and is skipped, not taken.
        """
        i = self._gold_pos
        valid = set(self.available_actions())
        while (
            i < len(self._gold)
            and self._gold[i] not in valid
            and self._gold[i].startswith(("open ", "close "))
        ):
            i += 1
        return i

    def _track_gold(self, action: str) -> None:
        if self._off_gold:
            return
        i = self._next_gold()
        if i < len(self._gold) and action == self._gold[i]:
            self._gold_pos = i + 1
        elif not action.startswith(_INERT_PREFIXES):
            self._off_gold = True

    def available_actions(self) -> list[str]:
        return [str(a) for a in self._infos.get("validActions", [])]

    def progress(self) -> float:
        if not self._infos:
            return 0.0
        if self._infos.get("tasksuccess"):
            return 1.0
        return min(1.0, max(0.0, float(self._infos.get("score", 0.0))))

    def expert(self) -> str:
        if not self._off_gold:
            i = self._next_gold()
            if i < len(self._gold):
                return self._gold[i]
        return "look around"

    def _close(self) -> None:
        if self._twx is not None:
            try:
                self._twx.close()
            except Exception:  # the JVM may already be gone; nothing left to release
                pass
            finally:
                self._twx = None
