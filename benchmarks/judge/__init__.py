"""The judge benchmark: our canary judge and two peers on the same simulated canaries.

- :mod:`benchmarks.judge.scenarios` — the traffic, the scenarios and the run's size;
- :mod:`benchmarks.judge.world` — draws that traffic window by window (with
  :mod:`~benchmarks.judge.draws`, :mod:`~benchmarks.judge.world_evidence` and
  :mod:`~benchmarks.judge.peer_steps`);
- :mod:`benchmarks.judge.argo`, :mod:`benchmarks.judge.kayenta` — the peers, from their
  documentation and source (:mod:`~benchmarks.judge.mann_whitney`,
  :mod:`~benchmarks.judge.promql`, :mod:`~benchmarks.judge.peer_result`);
- :mod:`benchmarks.judge.batch_judges` — ours and the peers behind one interface;
- :mod:`benchmarks.judge.simulation` — every judge after every window;
- :mod:`benchmarks.judge.run`, :mod:`benchmarks.judge.goals`, :mod:`benchmarks.judge.quality`
  — the figures, the goals and the JSON file (``mlplat bench judge``).
"""

__all__: list[str] = []
