"""The closed-loop demo (``mlplat demo``): the whole platform on one machine, in a few minutes.

A fresh store, the real inference service and traffic as child processes, the real monitoring
controller in-process, and three scenarios checked against the registry: a skewed canary rolled
back, a good one promoted, drift on the champion alerted. The demo uses the components as a person
would; none of them imports it.

- :mod:`demo.cli` — the ``mlplat demo`` command; :mod:`demo.run` — :func:`run_demo`, the whole run.
- :mod:`demo.config` — the typed knobs (time compressed, rules unchanged).
- :mod:`demo.world` — the running platform; :mod:`demo.paths`, :mod:`demo.processes` — its files,
  child processes and loops; :mod:`demo.training` — the CI stage on the demo's store.
- :mod:`demo.scenarios` — the three scenarios; :mod:`demo.verdicts` — their pure checks.
- :mod:`demo.samples`, :mod:`demo.timeline`, :mod:`demo.progress`, :mod:`demo.summary` — what it
  measures, draws, shows live and writes.

Names are resolved on first use (PEP 562), as in :mod:`monitoring`: ``mlplat --help`` finds the
command without importing the platform.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demo.cli import demo
    from demo.config import DemoConfig, DemoConfigError, load_demo_config
    from demo.run import run_demo
    from demo.verdicts import ScenarioResult

_EXPORTS: dict[str, str] = {
    "DemoConfig": "demo.config",
    "DemoConfigError": "demo.config",
    "ScenarioResult": "demo.verdicts",
    "demo": "demo.cli",
    "load_demo_config": "demo.config",
    "run_demo": "demo.run",
}

__all__ = [
    "DemoConfig",
    "DemoConfigError",
    "ScenarioResult",
    "demo",
    "load_demo_config",
    "run_demo",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'demo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
