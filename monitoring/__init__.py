"""Monitoring: drift checks, the canary judge, the controller, and the Prometheus stack's config.

Public API (import from the modules; this package imports nothing eagerly so that the
Prometheus/Alertmanager/Grafana folders can be lifted without the Python code):

- :mod:`monitoring.drift` — calibrated per-feature drift checks and the drift policy.
- :mod:`monitoring.judge` — the sequential canary judge (:class:`monitoring.judge.CanaryJudge`).
- :mod:`monitoring.peers` — Argo-Rollouts-style and Kayenta-style judges, for comparison.
- :mod:`monitoring.metrics` — the controller's Prometheus metrics.
- :mod:`monitoring.sources` — what the controller reads: Prometheus, a direct scrape of the
  service's ``/metrics``, the inference log, the reference samples.
- :mod:`monitoring.controller` — one cycle: judge the canary, act, run the drift job.
- :mod:`monitoring.app` — the controller's HTTP face (Alertmanager webhook, metrics, status).
- :mod:`monitoring.settings` / :mod:`monitoring.cli` — ``mlplat monitor`` and its settings.
"""
