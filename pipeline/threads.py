"""Thread limits for native (OpenMP/BLAS) code.

scikit-learn's gradient boosting parallelises with OpenMP. On a small machine shared with other
work (CI runners, a serving process), OpenMP threads busy-wait on each other: measured on the
2-core box, fitting took 10.6 s with two threads against 0.9 s with one, and a one-row prediction
270 ms against 11 ms. The pipeline therefore fits with ``ModelConfig.threads`` (1 by default) and
always measures with one thread, the way the model is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Cap native thread pools at ``threads`` inside the block (``None``: leave them alone)."""
    if threads is None:
        yield
        return
    with threadpool_limits(limits=threads):
        yield
