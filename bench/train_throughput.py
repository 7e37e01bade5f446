"""SFT throughput: ``palaestra.train.train_sft`` vs a plain TRL ``SFTTrainer`` script.

Same model, data (ToolQA easy expert episodes), settings and seed; each arm
runs in its own process so that peak memory (``ru_maxrss``) is its own.
Tokens/s counts the tokens the trainer processed (TRL's ``num_tokens``) over
the training runtime (loading and tokenization excluded). Prints a table and
writes ``bench/results/train_throughput.json``.

    python bench/train_throughput.py [--model tiny] [--steps 20] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENV = "toolqa-v1"


def _data(n: int) -> Any:
    from palaestra.rollout import load_config, rollout
    from palaestra.trajectory import RunStore, to_dataset

    out = Path(tempfile.mkdtemp()) / "expert"
    rollout(
        load_config(None, env=ENV, agent="expert", n=n, split="train", difficulty="easy"),
        out,
        progress=False,
    )
    with RunStore(out, readonly=True) as store:
        return to_dataset(store.episodes(outcome="success")).select_columns(["messages"])


def _arm(which: str, a: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(a.threads)
    data = _data(a.episodes)
    out = tempfile.mkdtemp()
    if which == "ours":
        from palaestra.train import SFTRunConfig, build_sft_trainer

        cfg = SFTRunConfig(
            method="full",
            learning_rate=1e-3,
            max_steps=a.steps,
            batch_size=a.batch_size,
            max_length=a.max_length,
            progress=False,
            logging_steps=a.steps,
        )
        trainer, _, _ = build_sft_trainer(a.model, data, cfg, out)
    else:
        # What a user would write by hand with TRL's documented API.
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl.trainer.sft_config import SFTConfig
        from trl.trainer.sft_trainer import SFTTrainer

        from palaestra.train import resolve_model_path

        path = resolve_model_path(a.model)
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
            args=SFTConfig(
                output_dir=out,
                learning_rate=1e-3,
                lr_scheduler_type="cosine",
                max_grad_norm=1.0,
                max_steps=a.steps,
                per_device_train_batch_size=a.batch_size,
                max_length=a.max_length,
                assistant_only_loss=True,
                use_cpu=not torch.cuda.is_available(),
                bf16=torch.cuda.is_available(),
                logging_steps=a.steps,
                save_strategy="no",
                report_to=[],
                disable_tqdm=True,
                seed=0,
            ),
            train_dataset=data,
            processing_class=AutoTokenizer.from_pretrained(path),
        )
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    tokens = max(float(h.get("num_tokens", 0)) for h in trainer.state.log_history)
    return {
        "arm": which,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "train_loss": result.metrics.get("train_loss"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description="SFT throughput: palaestra vs plain TRL.")
    p.add_argument("--model", default="tiny")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=640)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arm", choices=["ours", "trl"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.arm:
        print(json.dumps(_arm(a.arm, a)))
        return
    rows: list[dict[str, Any]] = []
    # ABBA order: the second process on a warm machine runs a few percent faster or
    # slower than the first; alternating cancels that drift out of the ratio.
    for arm in ("trl", "ours", "ours", "trl"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--arm", arm]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    def mean(arm: str, key: str) -> float:
        vals = [float(r[key]) for r in rows if r["arm"] == arm]
        return sum(vals) / len(vals)

    ratio = mean("ours", "tokens_per_s") / mean("trl", "tokens_per_s")
    print(f"{'arm':6} {'tokens/s':>10} {'seconds':>8} {'loss':>7} {'peak MB':>8}")
    for r in rows:
        print(
            f"{r['arm']:6} {r['tokens_per_s']:10.0f} {r['seconds']:8.1f} "
            f"{r['train_loss']:7.3f} {r['peak_rss_mb']:8.0f}"
        )
    print(
        f"mean tokens/s: trl {mean('trl', 'tokens_per_s'):.0f}, "
        f"ours {mean('ours', 'tokens_per_s'):.0f}; ratio ours/trl: {ratio:.2f}"
    )
    result = {"settings": vars(a) | {"env": ENV}, "arms": rows, "ratio": ratio}
    out = Path(__file__).parent / "results" / "train_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
