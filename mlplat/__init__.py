"""The ``mlplat`` command line: the composition root that wires every component together.

Each component owns its own commands (``ci.cli``, ``serving.cli``, ``monitoring.cli``, and the
``demo`` and ``benchmarks`` packages theirs); this package only groups them under one console
script, hands the controller's command the pipeline's drift rule (``mlplat/monitor.py``:
``monitoring`` does not import ``ci``) and holds the load generator, ``mlplat traffic``.
"""

from mlplat.cli import main

__all__ = ["main"]
