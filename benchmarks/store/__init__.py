"""The store benchmark: the deployment event log as SQLite, PostgreSQL and PostgreSQL JSONB.

- :mod:`benchmarks.store.events` — a plausible synthetic log;
- :mod:`benchmarks.store.stores` — the three schemas behind one interface;
- :mod:`benchmarks.store.run` — the measurements and the figures file (``mlplat bench store``).
"""

__all__: list[str] = []
