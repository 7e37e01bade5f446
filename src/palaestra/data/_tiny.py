"""The ``tiny`` model built from Palaestra's own corpus: ``get_model("tiny")``, ``tiny_path``.

The model layer builds and trains ``tiny`` from text it is given
(``palaestra.model.build_tiny``, ``pretrain_on_documents``); this module gives
it the corpora of :mod:`._corpus`. The ``tiny`` model id is registered to
:func:`tiny_model` (``palaestra.model``'s provider table names it by string, so
the model layer never imports this one). Needs the ``[train]`` extra, which the
model-layer imports below ask for when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palaestra.data._corpus import pretrain_documents, tiny_corpus
from palaestra.model import Model, PretrainConfig, build_tiny, load_tiny, pretrain_on_documents


def tiny_path(name: str = "", *, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Build (once) and return the folder of the tiny model ``name`` (a preset) with ``seed``."""
    return build_tiny(tiny_corpus(), name, seed=seed, cache_dir=cache_dir)


def tiny_model(
    name: str = "", *, seed: int = 0, cache_dir: str | Path | None = None, **kw: Any
) -> Model:
    """``get_model("tiny")``; ``get_model("tiny/micro")`` for the smaller preset. ``kw`` go to HFModel."""
    return load_tiny(tiny_path(name, seed=seed, cache_dir=cache_dir), name, **kw)


def pretrain_tiny(config: PretrainConfig, out: str | Path, *, progress: bool = True) -> Path:
    """Run the pretraining recipe; write the model, its tokenizer and ``pretrain_card.json``.

    Starts from a fresh ``tiny`` build of ``config.preset`` and ``config.seed``,
    or from ``config.init_from`` (a model folder: a curriculum of stages).
    """
    if config.init_from is not None:
        base = Path(config.init_from)
    else:
        base = tiny_path(config.preset, seed=config.seed)
    return pretrain_on_documents(
        config, out, pretrain_documents(config), base=base, progress=progress
    )
