"""spiral_analysis — load, measure and plot spiral runs (one HDF5 file per run).

Use Debian's Python (``/usr/bin/python3``) with ``PYTHONPATH=analysis``::

    from spiral_analysis import Run, metrics
    run = Run("/tmp/arb.h5")
    pool = run.markets()["pool"]
    metrics.max_drawdown(pool["price"])

The file layout is documented column by column in docs/output.md.
"""
from .load import Run, SpiralFileError, IncompleteRunError, decode_category  # noqa: F401
from . import metrics  # noqa: F401

__all__ = ["Run", "SpiralFileError", "IncompleteRunError", "decode_category", "metrics"]
