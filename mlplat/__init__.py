"""The ``mlplat`` command line: the composition root that wires every component together.

Each component owns its own commands (``ci.cli``, ``serving.cli``, ``monitoring.cli``); this
package only groups them under one console script and holds the cross-component entry points (the
closed-loop demo and the benchmark dispatcher).
"""

from mlplat.cli import main

__all__ = ["main"]
