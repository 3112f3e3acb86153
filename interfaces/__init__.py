"""What the components agree on, written down once: names, rules and file conventions.

Every component may import this package and :mod:`features`; no component imports another to
learn a name. Each module holds one kind of agreement:

- :mod:`interfaces.metric_names` — the eight serving metrics and their supporting series,
  labels and buckets (read by Prometheus rules, the dashboard and the canary judge);
- :mod:`interfaces.drift_gauges` — metric 7's gauges, published by the service and the
  controller alike;
- :mod:`interfaces.routing` — variant names and the champion/canary split by routing hash
  (the service routes by it, the controller re-derives the canary's baseline with it);
- :mod:`interfaces.tags` — MLflow tag names and artifact paths;
- :mod:`interfaces.secrets` — the bearer-token rule and its constant-time check;
- :mod:`interfaces.files` — atomic file writes;
- :mod:`interfaces.database_url` — database URLs as users write them, made usable here;
- :mod:`interfaces.inference_log` — the inference log's tables, row types and how it is opened
  (the service writes it, the controller reads it).

Import from the modules; this package re-exports nothing, so importing one agreement never
loads another's dependencies (``prometheus_client`` for the gauges only, SQLAlchemy for the
inference log only).
"""

__all__: list[str] = []
