"""Thread limits for native (OpenMP/BLAS) code.

scikit-learn's gradient boosting parallelises with OpenMP. On a small machine shared with other
work (CI runners, a serving process), OpenMP threads busy-wait on each other: measured on the
2-core box, fitting took 10.6 s with two threads against 0.9 s with one, and a one-row prediction
270 ms against 11 ms. The pipeline therefore fits with ``ModelConfig.threads`` (1 by default) and
always measures with one thread, the way the model is served; the service pins its model thread
with the same function.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from threadpoolctl import threadpool_limits


def limit_threads(threads: int | None) -> AbstractContextManager[object]:
    """Cap native thread pools at ``threads`` from now on (``None``: leave them alone).

    Used as a context manager, the previous limits come back when the block ends; called
    alone, the cap stays. OpenMP limits apply to the calling thread only, so call it in the
    thread that fits or predicts.
    """
    if threads is None:
        return contextlib.nullcontext()
    limits: AbstractContextManager[object] = threadpool_limits(limits=threads)
    return limits
