"""Merging fine-tunes: folding a LoRA adapter into its base, and Model Breadcrumbs.

Model Breadcrumbs (Davari & Belilovsky, "Model Breadcrumbs: Scaling
Multi-Task Model Merging with Sparse Masks", 2023): each fine-tune of one
base gives a task vector ``tau = theta_ft - theta_base``. Per layer (tensor)
the weights of ``tau`` are ranked by magnitude; the largest ``beta`` fraction
(outliers) and the smallest ``gamma`` fraction (negligible perturbations) are
masked out, and the merged model is ``theta_base + weight * sum_t mask_t *
tau_t``. Ties in magnitude are broken by position (a stable sort), so the
masks are deterministic. Non-floating-point tensors (buffers) keep the base's
values. Deviation: the paper tunes ``beta``, ``gamma`` and ``weight`` on
validation tasks; the defaults here (drop the top 1% and the bottom 85%,
weight 1) are a starting point, not a recommendation from the paper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


def breadcrumbs_mask(tau: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """Boolean mask keeping ``tau``'s weights outside the top ``beta`` and bottom ``gamma`` by |value|."""
    if not (0 <= beta <= 1 and 0 <= gamma <= 1 and beta + gamma <= 1):
        raise ValueError(f"need 0 <= beta, gamma and beta + gamma <= 1; got {beta=}, {gamma=}")
    n = tau.numel()
    n_top, n_bottom = round(beta * n), round(gamma * n)
    order = torch.argsort(tau.abs().flatten(), stable=True)  # ascending magnitude
    keep = torch.zeros(n, dtype=torch.bool)
    keep[order[n_bottom : n - n_top]] = True
    return keep.view(tau.shape)


def breadcrumbs_merge(
    base: Mapping[str, torch.Tensor],
    finetunes: Sequence[Mapping[str, torch.Tensor]],
    *,
    beta: float = 0.01,
    gamma: float = 0.85,
    weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Merge the state dicts ``finetunes`` of the same ``base`` with Model Breadcrumbs (see module)."""
    if not finetunes:
        raise ValueError("breadcrumbs_merge needs at least one fine-tune")
    merged: dict[str, torch.Tensor] = {}
    for name, theta in base.items():
        missing = [i for i, ft in enumerate(finetunes) if name not in ft]
        if missing:
            raise KeyError(f"fine-tune(s) {missing} lack the tensor {name!r} of the base")
        if not theta.is_floating_point():
            merged[name] = theta.clone()
            continue
        total = torch.zeros_like(theta, dtype=torch.float32)
        for ft in finetunes:
            if ft[name].shape != theta.shape:
                raise ValueError(f"{name}: shape {tuple(ft[name].shape)} != {tuple(theta.shape)}")
            tau = ft[name].float() - theta.float()
            total += tau * breadcrumbs_mask(tau, beta, gamma)
        merged[name] = (theta.float() + weight * total).to(theta.dtype)
    return merged


def _adapter_base(adapter_dir: Path) -> str:
    meta = adapter_dir / "palaestra.json"
    if meta.is_file():
        return str(json.loads(meta.read_text())["base_path"])
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    return str(config["base_model_name_or_path"])


def load_merged(folder: str | Path, base: str | Path | None = None) -> Any:
    """A transformers model from a full-model folder, or an adapter folder folded into its base."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    from peft import PeftModel

    base_path = str(base) if base is not None else _adapter_base(folder)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()  # pyright: ignore[reportUnknownMemberType]


def _save_with_tokenizer(model: Any, tokenizer_from: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(out)


def merge_adapter(
    adapter_dir: str | Path, out_dir: str | Path, base: str | Path | None = None
) -> Path:
    """Fold a LoRA adapter into its base (from ``palaestra.json`` or the adapter config); save fp32."""
    adapter = Path(adapter_dir)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} holds no LoRA adapter (adapter_config.json)")
    out = Path(out_dir)
    _save_with_tokenizer(load_merged(adapter, base), adapter, out)
    return out


def breadcrumbs_merge_models(
    base: str | Path,
    finetunes: Sequence[str | Path],
    out_dir: str | Path,
    *,
    beta: float = 0.01,
    gamma: float = 0.85,
    weight: float = 1.0,
) -> Path:
    """Model Breadcrumbs over checkpoint folders (full models or adapters of ``base``); saves fp32."""
    from palaestra.train._common import resolve_model_path

    base_path = resolve_model_path(base)
    model = load_merged(base_path)
    states = [load_merged(f, base_path).state_dict() for f in finetunes]
    model.load_state_dict(
        breadcrumbs_merge(model.state_dict(), states, beta=beta, gamma=gamma, weight=weight)
    )
    out = Path(out_dir)
    _save_with_tokenizer(model, base_path, out)
    return out
