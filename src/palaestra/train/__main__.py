"""``python -m palaestra.train sft|dpo ...``: the ``palaestra train`` commands as a module.

``accelerate launch`` starts a module per process (``-m palaestra.train``),
so multi-GPU runs use this entry point.
"""

from palaestra.cli.train import train_app

if __name__ == "__main__":
    train_app()
