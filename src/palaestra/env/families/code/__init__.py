"""``code-v1``: procedurally generated programming tasks checked by hidden unit tests.

The task format follows HumanEval ("Evaluating Large Language Models Trained
on Code", Chen et al. 2021) and MBPP ("Program Synthesis with Large Language
Models", Austin et al. 2021): a function name and signature, a description
and a few visible examples; the score is measured by hidden unit tests. The
interaction follows the code environments of InterCode ("InterCode:
Standardizing and Benchmarking Interactive Coding with Execution Feedback",
Yang et al. 2023): the agent may define, run and revise before it submits.

Tasks come from templates (:mod:`._problems`) whose parameters are drawn from
the task seed — which characters to count, a threshold, a separator, strict or
non-strict order — so each seed is a concrete problem with its own reference
solution; visible examples and hidden tests are generated from the same seed
and their expected outputs computed with the reference. Easy tasks are one-line
transformations (6 hidden tests), medium ones dict/list building (8), hard
ones small algorithms (10). The heldout split uses templates that never
appear in train and test.

Actions (one per turn, so the ReAct loop can drive it):

- ``define`` followed by a fenced ```` ```python ```` block: the code becomes
  the current solution; it runs in a fresh sandboxed process against the
  visible examples *and* the hidden tests. The observation shows the
  examples' results, the traceback of an error, and printed output (all
  truncated) — never the hidden tests. A bare one-liner ``define def f(x): ...``
  is accepted too.
- ``submit``: ends the episode. Reward = fraction of hidden tests the current
  solution passes; success = all pass. Submitting before any ``define`` is an
  invalid action.

``progress()`` is the fraction of hidden tests the current solution passes
(1.0 once it passes all). The expert defines the reference solution and
submits. ``available_actions()`` lists two wrong stubs (returning the first
example's output, returning the first argument) and ``submit``; tasks are
drawn so that neither stub passes every hidden test, so a random agent
scores ~0.

Candidate code always runs in a sandbox (:mod:`palaestra.sandbox`), one per
environment instance, started on the first ``define`` and closed by
``close()``; each run is a fresh process with a per-case alarm (1 s) and an
overall timeout. A failing sandbox raises :class:`~palaestra.env.EnvError`
whose message starts with ``sandbox_unavailable`` (an error outcome); failing
code is an ordinary observation. Results of identical code on the same task are
cached per instance, which keeps snapshot replays and the conformance checker
fast (and makes a re-``define`` of the same code deterministic).

Deviations: outputs are compared as JSON values (a tuple equals a list, and
dict keys must be strings), since they cross the sandbox boundary as JSON;
``True`` never equals ``1``. The environment's whitespace normalisation of
actions does not apply to the code: the family reads the action verbatim.
"""

from palaestra.env.families.code._env import CodeEnv, define_action

__all__ = ["CodeEnv", "define_action"]
