"""The serving benchmark: ``predict_proba`` alone, a naive endpoint and the real service.

- :mod:`benchmarks.serving.apps` — the two servers compared, as uvicorn app factories;
- :mod:`benchmarks.serving.load` — servers in their own processes and ``wrk`` runs against them;
- :mod:`benchmarks.serving.in_process` — the model's and the instrumentation's in-process cost;
- :mod:`benchmarks.serving.run` — the rounds, the goals and the figures file
  (``mlplat bench serve``).
"""

__all__: list[str] = []
