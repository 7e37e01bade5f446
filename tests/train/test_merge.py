"""Model Breadcrumbs masks and merges on hand-checkable tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from palaestra.train import breadcrumbs_mask, breadcrumbs_merge


def test_mask_drops_top_and_bottom() -> None:
    tau = torch.tensor([[0.1, -5.0, 0.3, 2.0], [-0.2, 0.05, 1.0, -0.4]])
    # |tau| ascending: 0.05 0.1 0.2 0.3 0.4 1.0 2.0 5.0; drop bottom 2 and top 1.
    mask = breadcrumbs_mask(tau, beta=1 / 8, gamma=2 / 8)
    expected = torch.tensor([[False, False, True, True], [True, False, True, True]])
    assert torch.equal(mask, expected)
    assert breadcrumbs_mask(tau, 0, 0).all()
    assert not breadcrumbs_mask(tau, 0.5, 0.5).any()
    with pytest.raises(ValueError, match="beta"):
        breadcrumbs_mask(tau, 0.6, 0.6)


def test_merge_sums_masked_task_vectors() -> None:
    base = {"w": torch.zeros(4), "steps": torch.tensor([7])}
    ft1 = {"w": torch.tensor([10.0, 1.0, 0.5, 0.01]), "steps": torch.tensor([9])}
    ft2 = {"w": torch.tensor([0.02, -2.0, -3.0, 100.0]), "steps": torch.tensor([9])}
    # Per fine-tune drop its largest (beta=1/4) and smallest (gamma=1/4) entry.
    merged = breadcrumbs_merge(base, [ft1, ft2], beta=0.25, gamma=0.25, weight=0.5)
    # ft1 keeps [_, 1.0, 0.5, _]; ft2 keeps [_, -2.0, -3.0, _].
    assert torch.allclose(merged["w"], torch.tensor([0.0, -0.5, -1.25, 0.0]))
    assert torch.equal(merged["steps"], torch.tensor([7]))  # buffers keep the base
    with pytest.raises(ValueError, match="at least one"):
        breadcrumbs_merge(base, [])
    with pytest.raises(KeyError, match="w"):
        breadcrumbs_merge(base, [{"steps": torch.tensor([1])}])


def test_breadcrumbs_merge_models_on_folders(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from palaestra.train import breadcrumbs_merge_models, resolve_model_path

    base = resolve_model_path("tiny/micro")
    names: list[Path] = []
    for i, delta in enumerate((0.5, -0.25)):
        model = AutoModelForCausalLM.from_pretrained(base)
        with torch.no_grad():
            model.model.norm.weight.add_(delta)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        model.save_pretrained(tmp_path / f"ft{i}")
        names.append(tmp_path / f"ft{i}")
    out = breadcrumbs_merge_models("tiny/micro", names, tmp_path / "mix", beta=0, gamma=0)
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    original = AutoModelForCausalLM.from_pretrained(base).state_dict()
    key = "model.norm.weight"
    assert torch.allclose(merged[key], original[key] + 0.25)
    assert torch.equal(merged["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
    assert (out / "tokenizer_config.json").is_file()
