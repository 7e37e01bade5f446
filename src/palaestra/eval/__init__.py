"""Evaluation: fixed, versioned suites; ``evaluate``; metrics with uncertainty; reports.

- Suites (``_suites.py``): ``heldin-v1``, ``heldout-v1``, ``perturbed-v1`` and one
  per family, plus user suites in YAML — same suite id, same tasks, forever.
- ``evaluate(config, out_dir)`` (``_run.py``): every (task, epoch) through the
  rollout engine into a resumable run directory (``Run.kind == "eval"``).
- Metrics (``_metrics.py``, ``_stats.py``, ``_compare.py``): success, progress,
  pass@k / pass^k, error and limit counts, CIs, paired comparisons.
- ``teacher_forced_accuracy`` (``_teacher.py``): does a model reproduce the expert's
  next reply given the true history (a probe of a policy without sampling).
- Reports (``_report.py``): one self-contained HTML file + Markdown + JSON.
"""

from palaestra.eval._compare import Comparison, compare, compare_runs
from palaestra.eval._metrics import (
    Estimate,
    GroupMetrics,
    Price,
    RunMetrics,
    compute_metrics,
    run_metrics,
)
from palaestra.eval._render import write_report
from palaestra.eval._report import Report, build_report
from palaestra.eval._run import EvalConfig, evaluate, load_eval_config
from palaestra.eval._stats import pass_at_k, pass_hat_k, wilson
from palaestra.eval._suites import (
    Suite,
    SuiteEntry,
    SuiteEnv,
    SuiteTask,
    get_suite,
    list_suites,
    load_suite,
    suite_tasks,
)
from palaestra.eval._teacher import TeacherForced, teacher_forced_accuracy

__all__ = [
    "Comparison",
    "Estimate",
    "EvalConfig",
    "GroupMetrics",
    "Price",
    "Report",
    "RunMetrics",
    "Suite",
    "SuiteEntry",
    "SuiteEnv",
    "SuiteTask",
    "TeacherForced",
    "build_report",
    "compare",
    "compare_runs",
    "compute_metrics",
    "evaluate",
    "get_suite",
    "list_suites",
    "load_eval_config",
    "load_suite",
    "pass_at_k",
    "pass_hat_k",
    "run_metrics",
    "suite_tasks",
    "teacher_forced_accuracy",
    "wilson",
    "write_report",
]
