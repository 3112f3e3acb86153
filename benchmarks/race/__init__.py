"""The registry race: OS processes moving one model's aliases at once, checked every round.

- :mod:`benchmarks.race.harness` — the coordinator, the racing workers and their moves;
- :mod:`benchmarks.race.checks` — what must hold after every round;
- :mod:`benchmarks.race.stack` — fresh SQLite or PostgreSQL stores for a race;
- :mod:`benchmarks.race.run` — ``mlplat bench registry-race``.

The integration tests (``tests/integration/registry/test_race.py``) drive the same harness.
"""

__all__: list[str] = []
