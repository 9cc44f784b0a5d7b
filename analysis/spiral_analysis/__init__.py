"""spiral_analysis — load, measure and plot spiral runs (one HDF5 file per run),
sweeps (``spiral sweep``: a directory with summary.h5) and stress tests
(``spiral stress``: the fragility curve).

Use Debian's Python (``/usr/bin/python3``) with ``PYTHONPATH=analysis``::

    from spiral_analysis import Run, Sweep, Stress, metrics
    run = Run("/tmp/arb.h5")
    pool = run.markets()["pool"]
    metrics.max_drawdown(pool["price"])
    Sweep("sweeps/ava").by_arm("bad_debt_total")

The file layout is documented column by column in docs/output.md.
"""
from .load import (Run, Sweep, Stress, SpiralFileError, IncompleteRunError,  # noqa: F401
                   decode_category, continued)
from . import metrics  # noqa: F401

__all__ = ["Run", "Sweep", "Stress", "SpiralFileError", "IncompleteRunError", "decode_category",
           "continued", "metrics"]
