"""Safety baselines and the refusal detector's precision/recall (issue 17).

1. ``safe-v1``: safe, helpful and safe-and-helpful rates of the expert, a
   uniform random agent and the always-refuse agent, per split — refusing
   everything is safe but not helpful, and the table shows by how much.
2. ``refusal-v1``: refusal rate on harmful requests and over-refusal rate on
   benign look-alikes for the same three agents.
3. The rule-based refusal detector's precision, recall and accuracy on the
   labelled replies shipped in ``palaestra/env/families/data/refusal_replies.jsonl``,
   per split (``dev``: the rules were written with them in view; ``heldout``:
   written after the first rules were frozen, then used to extend them;
   ``heldout2``: written after that and never used to change a rule — the honest
   estimate) and per kind of reply.

CPU only, a few seconds. Results: tables on stdout and ``bench/results/safety.json``.

    python bench/safety.py --n 150
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from palaestra.agent import always_refuse_policy
from palaestra.env import Policy, Task, expert_policy, make, random_policy, tasks
from palaestra.env.families.refusal import explain_refusal, labelled_replies, precision_recall

AGENTS: dict[str, Callable[[Task], Policy]] = {
    "expert": lambda _: expert_policy,
    "random": lambda t: random_policy(t.task_id),
    "always-refuse": lambda _: always_refuse_policy,
}


def _final_info(env_id: str, task: Task, policy: Policy) -> dict[str, Any]:
    with closing(make(env_id)) as env:
        obs = env.reset(task)
        while not obs.done:
            obs = env.step(policy(env, obs))
        return obs.info


def safe_table(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for split in ("test", "heldout"):
        suite = tasks("safe-v1", split, n=n)
        for name, policy_of in AGENTS.items():
            recs = [_final_info("safe-v1", t, policy_of(t)).get("safety") for t in suite]
            got = [r for r in recs if r is not None]  # truncated episodes carry it too
            rows.append({
                "split": split, "agent": name, "n": len(suite),
                **{k: sum(bool(r[k]) for r in got) / len(suite)
                   for k in ("safe", "helpful", "safe_and_helpful")},
            })  # fmt: skip
    return rows


def refusal_table(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for split in ("test", "heldout"):
        suite = tasks("refusal-v1", split, n=n)
        for name, policy_of in AGENTS.items():
            infos = [_final_info("refusal-v1", t, policy_of(t)).get("refusal") for t in suite]
            harm = [i for i in infos if i and i["harmful"]]
            benign = [i for i in infos if i and not i["harmful"]]
            rows.append({
                "split": split, "agent": name, "n_harmful": len(harm), "n_benign": len(benign),
                "refusal_rate_harmful": sum(i["refused"] for i in harm) / max(len(harm), 1),
                "over_refusal_benign": sum(i["refused"] for i in benign) / max(len(benign), 1),
            })  # fmt: skip
    return rows


def detector_table() -> dict[str, Any]:
    rows = labelled_replies()
    out: dict[str, Any] = {}
    for split in ("dev", "heldout", "heldout2", "all"):
        rs = [r for r in rows if split in ("all", r["split"])]
        out[split] = precision_recall([r["text"] for r in rs], [r["refusal"] for r in rs])
    kinds = sorted({r["kind"] for r in rows})
    out["by_kind"] = {
        k: {
            "n": sum(r["kind"] == k for r in rows),
            "correct": sum(
                r["kind"] == k and explain_refusal(r["text"]).refused == r["refusal"] for r in rows
            ),
        }
        for k in kinds
    }
    out["errors"] = [
        {"split": r["split"], "kind": r["kind"], "label": r["refusal"], "text": r["text"]}
        for r in rows
        if explain_refusal(r["text"]).refused != r["refusal"]
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150, help="tasks per split")
    parser.add_argument("--out", type=Path, default=Path("bench/results/safety.json"))
    args = parser.parse_args()
    result = {"safe-v1": safe_table(args.n), "refusal-v1": refusal_table(args.n)}
    result["detector"] = detector_table()
    print("safe-v1              split    safe  helpful  safe&helpful")
    for r in result["safe-v1"]:
        print(
            f"  {r['agent']:<18} {r['split']:<7} {r['safe']:5.2f}  {r['helpful']:7.2f}  "
            f"{r['safe_and_helpful']:12.2f}"
        )
    print("refusal-v1           split    refused(harmful)  over-refusal(benign)")
    for r in result["refusal-v1"]:
        print(
            f"  {r['agent']:<18} {r['split']:<7} {r['refusal_rate_harmful']:16.2f}  "
            f"{r['over_refusal_benign']:20.2f}"
        )
    print("refusal detector     n   precision  recall  accuracy")
    for split in ("dev", "heldout", "heldout2", "all"):
        d = result["detector"][split]
        print(
            f"  {split:<16} {int(d['n']):3d}  {d['precision']:9.2f}  {d['recall']:6.2f}  "
            f"{d['accuracy']:8.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
