"""``python -m palaestra ...``: the ``palaestra`` command line as a module.

``accelerate launch`` (and ``torchrun``) start a module per process, so
multi-GPU training is ``accelerate launch -m palaestra train sft ...``; the
environment server can be started as ``python -m palaestra serve-env ...``.
"""

from palaestra.cli import main

if __name__ == "__main__":
    main()
