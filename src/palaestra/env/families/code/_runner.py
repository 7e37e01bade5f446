"""Run candidate code against test cases in a sandbox: one fresh process per run.

The host sends the code, the function name and the argument lists (never the
expected outputs) to a small harness on the sandbox's stdin. The harness
executes the code with its printed output captured, calls the function on
each case under a per-case alarm, and writes the JSON-encoded results on one
line behind a per-run nonce. The host compares them with the expected
outputs, so code that tampers with the harness can at worst make its own
results unreadable, never forge a pass.

Failures are split as the environment contract requires: the candidate's
code failing (syntax error, exception, timeout, killed process, huge output)
is a :class:`RunResult` with feedback; the sandbox failing (it cannot start,
it died, the interpreter is missing) raises :class:`~palaestra.env.EnvError`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from palaestra.env._core import EnvError

if TYPE_CHECKING:
    from palaestra.sandbox import ExecResult, Sandbox

#: Largest JSON text of one returned value the harness sends back.
MAX_VALUE_CHARS = 1000
#: Characters of printed output and of a traceback kept for feedback.
MAX_FEEDBACK_CHARS = 1500

_HARNESS = r"""
import copy, io, json, signal, sys, traceback
req = json.loads(sys.stdin.read())
real_out = sys.stdout
nonce = req["nonce"]
real_out.write(nonce + "READY\n")
real_out.flush()

class Cap(io.StringIO):
    def write(self, s):
        if self.tell() < req["max_print"]:
            super().write(s[: req["max_print"]])
        return len(s)

class CaseTimeout(BaseException):
    pass

def on_alarm(signum, frame):
    raise CaseTimeout()

def short_tb(e):
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(e), e, tb))
    return text[-req["max_print"]:]

signal.signal(signal.SIGALRM, on_alarm)
buf = Cap()
res = {"define_error": None, "results": [], "printed": ""}
sys.stdout = sys.stderr = buf
ns = {"__name__": "__solution__"}
try:
    signal.setitimer(signal.ITIMER_REAL, req["define_timeout"])
    exec(compile(req["code"], "<solution>", "exec"), ns)
    signal.setitimer(signal.ITIMER_REAL, 0)
except CaseTimeout:
    res["define_error"] = "Running your code timed out after %ss." % req["define_timeout"]
except BaseException as e:
    signal.setitimer(signal.ITIMER_REAL, 0)
    res["define_error"] = short_tb(e)
fn = ns.get(req["name"])
if res["define_error"] is None and not callable(fn):
    res["define_error"] = "Your code does not define a function named %r." % req["name"]
if res["define_error"] is None:
    for args in req["cases"]:
        try:
            signal.setitimer(signal.ITIMER_REAL, req["case_timeout"])
            value = fn(*copy.deepcopy(args))
            signal.setitimer(signal.ITIMER_REAL, 0)
            text = json.dumps(value)
            if len(text) > req["max_value"]:
                res["results"].append({"error": "returned a value too large to compare"})
            else:
                res["results"].append({"value": json.loads(text)})
        except CaseTimeout:
            res["results"].append({"error": "timed out after %ss" % req["case_timeout"]})
        except BaseException as e:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(e, (TypeError, ValueError)) and "JSON" in str(e):
                res["results"].append({"error": "returned a value that is not plain data: %s" % e})
            else:
                res["results"].append({"error": short_tb(e)})
res["printed"] = buf.getvalue()
real_out.write("\n" + nonce + json.dumps(res) + "\n")
real_out.flush()
"""


@dataclass
class CaseResult:
    """One call of the candidate function."""

    value: Any = None
    error: str | None = None


@dataclass
class RunResult:
    """The outcome of running candidate code on a list of cases."""

    #: Why the code could not be tested at all (error, timeout, no such function); None if it could.
    define_error: str | None = None
    cases: list[CaseResult] = field(default_factory=list[CaseResult])
    printed: str = ""


def same(a: Any, b: Any) -> bool:
    """JSON-value equality where ``True != 1`` but ``2 == 2.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        la: list[Any] = a  # pyright: ignore[reportUnknownVariableType]
        lb: list[Any] = b  # pyright: ignore[reportUnknownVariableType]
        return len(la) == len(lb) and all(same(x, y) for x, y in zip(la, lb, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        da: dict[str, Any] = a  # pyright: ignore[reportUnknownVariableType]
        db: dict[str, Any] = b  # pyright: ignore[reportUnknownVariableType]
        return da.keys() == db.keys() and all(same(da[k], db[k]) for k in da)
    return type(a) is type(b) and a == b


def run_cases(
    sandbox: Sandbox,
    code: str,
    name: str,
    cases: list[list[Any]],
    *,
    python: str = "python3",
    case_timeout: float = 1.0,
    define_timeout: float = 2.0,
) -> RunResult:
    """Run ``code`` and call ``name(*args)`` for each case in a fresh sandboxed process."""
    nonce = "@@" + secrets.token_hex(8) + "@@"
    request = {
        "nonce": nonce,
        "code": code,
        "name": name,
        "cases": cases,
        "case_timeout": case_timeout,
        "define_timeout": define_timeout,
        "max_value": MAX_VALUE_CHARS,
        "max_print": MAX_FEEDBACK_CHARS,
    }
    from palaestra.sandbox import SandboxError

    budget = define_timeout + case_timeout * len(cases) + 5.0
    try:
        result = sandbox.exec(
            [python, "-I", "-c", _HARNESS], timeout=budget, stdin=json.dumps(request)
        )
    except SandboxError as e:
        raise EnvError(f"sandbox_unavailable: the code sandbox failed: {e}") from e
    return _parse(result, nonce, budget)


def _parse(result: ExecResult, nonce: str, budget: float) -> RunResult:
    lines = result.stdout.splitlines()
    if nonce + "READY" not in lines:
        if result.timed_out:
            raise EnvError(
                f"sandbox_unavailable: the test harness did not start within {budget:.0f}s"
            )
        raise EnvError(
            "sandbox_unavailable: the test harness did not start in the sandbox "
            f"(exit code {result.exit_code}): {result.stderr.strip()[-300:]}"
        )
    payload = next((ln for ln in reversed(lines) if ln.startswith(nonce + "{")), None)
    if payload is None:
        if result.timed_out:
            why = f"Running your code timed out after {budget:.0f}s."
        else:
            why = (
                f"The process running your code ended early (exit code {result.exit_code}) "
                "before the tests finished: it was killed (memory or CPU limit) or exited."
            )
        return RunResult(define_error=why)
    data = json.loads(payload[len(nonce) :])
    cases = [CaseResult(value=r.get("value"), error=r.get("error")) for r in data["results"]]
    return RunResult(define_error=data["define_error"], cases=cases, printed=data["printed"])
