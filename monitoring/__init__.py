"""Monitoring: drift checks, the canary judge, the controller, and the Prometheus stack's config.

Public API (import from the modules; this package imports nothing eagerly so that the
Prometheus/Alertmanager/Grafana folders can be lifted without the Python code):

- :mod:`monitoring.drift` — calibrated per-feature drift checks and the drift policy.
- :mod:`monitoring.judge` — the sequential canary judge (:class:`monitoring.judge.CanaryJudge`).
- :mod:`monitoring.peers` — Argo-Rollouts-style and Kayenta-style judges, for comparison.
- :mod:`monitoring.metrics` — the controller's Prometheus metrics.
"""
