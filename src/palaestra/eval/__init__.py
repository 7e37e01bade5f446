"""Evaluation: fixed, versioned suites; ``evaluate``; metrics with uncertainty; reports.

- Suites (``_suites.py``): ``heldin-v1``, ``heldout-v1``, ``perturbed-v1`` and one
  per family, plus user suites in YAML — same suite id, same tasks, forever.
- ``evaluate(config, out_dir)`` (``_run.py``): every (task, epoch) through the
  rollout engine into a resumable run directory (``Run.kind == "eval"``).
- Metrics (``_metrics.py``, ``_stats.py``, ``_compare.py``): success, progress,
  pass@k / pass^k, error and limit counts, CIs, paired comparisons.
- ``teacher_forced_accuracy`` (``_teacher.py``): does a model reproduce the expert's
  next reply given the true history (a probe of a policy without sampling).
- Reports (``_report.py``): one self-contained HTML file + Markdown + JSON; other
  reports (evolve's) reuse the rendering: :class:`Section` tables, :func:`html_page`,
  :func:`markdown_page`, and figures such as :func:`panel_curves`.
- ``orm_metrics`` (``_orm_metrics.py``): how well an outcome reward model's P(success)
  predicts outcomes (accuracy with its baseline, AUROC, Brier).
- ``judge_refusals`` (``_refusal_judge.py``): a judge model's refusal labels, to check
  ``refusal-v1``'s rule-based detector against (for reports, never for rewards).
"""

from palaestra.eval._compare import Comparison, compare, compare_runs
from palaestra.eval._metrics import (
    Estimate,
    GroupMetrics,
    InjectionMetrics,
    Price,
    RunMetrics,
    compute_metrics,
    group_of,
    injection_metrics,
    run_metrics,
)
from palaestra.eval._orm_metrics import ORMMetrics, orm_metrics
from palaestra.eval._plots import CurvePoint, panel_curves
from palaestra.eval._refusal_judge import JUDGE_PROMPT, judge_refusals
from palaestra.eval._render import html_page, markdown_page, print_summary, write_report
from palaestra.eval._report import Report, ReportFiles, Section, build_report
from palaestra.eval._run import EvalConfig, evaluate, load_eval_config
from palaestra.eval._safety import (
    SAFETY_ENV_PREFIXES,
    RefusalMetrics,
    SafetyCell,
    SafetyDelta,
    SafetyMetrics,
    compare_safety,
    refusal_of,
    risk_realised_at,
    safety_metrics,
    safety_of,
)
from palaestra.eval._stats import pass_at_k, pass_hat_k, wilson
from palaestra.eval._suites import (
    Suite,
    SuiteEntry,
    SuiteEnv,
    SuiteTask,
    get_suite,
    list_suites,
    load_suite,
    split_perturbation,
    suite_tasks,
)
from palaestra.eval._teacher import TeacherForced, teacher_forced_accuracy

__all__ = [
    "JUDGE_PROMPT",
    "SAFETY_ENV_PREFIXES",
    "Comparison",
    "CurvePoint",
    "Estimate",
    "EvalConfig",
    "GroupMetrics",
    "InjectionMetrics",
    "ORMMetrics",
    "Price",
    "RefusalMetrics",
    "Report",
    "ReportFiles",
    "RunMetrics",
    "SafetyCell",
    "SafetyDelta",
    "SafetyMetrics",
    "Section",
    "Suite",
    "SuiteEntry",
    "SuiteEnv",
    "SuiteTask",
    "TeacherForced",
    "build_report",
    "compare",
    "compare_runs",
    "compare_safety",
    "compute_metrics",
    "evaluate",
    "get_suite",
    "group_of",
    "html_page",
    "injection_metrics",
    "judge_refusals",
    "list_suites",
    "load_eval_config",
    "load_suite",
    "markdown_page",
    "orm_metrics",
    "panel_curves",
    "pass_at_k",
    "pass_hat_k",
    "print_summary",
    "refusal_of",
    "risk_realised_at",
    "run_metrics",
    "safety_metrics",
    "safety_of",
    "split_perturbation",
    "suite_tasks",
    "teacher_forced_accuracy",
    "wilson",
    "write_report",
]
