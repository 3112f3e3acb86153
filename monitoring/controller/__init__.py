"""The monitoring controller: judge the live canary, act on the verdict, run the drift job.

One cycle (:meth:`Controller.run_once`) does, in order:

1. **Read the deployment** from the registry, after ``reconcile()`` has completed any move a
   previous process left half done. A canary is live when the ``challenger`` gets traffic.
2. **Judge the canary** once per completed judge window with
   :class:`~monitoring.judge.CanaryJudge`. Its evidence comes from the inference log
   (``monitoring/judge/log_evidence.py``): time-matched strata (one per window), clusters of
   routing keys, slices, failed rows, latency, labels, and a baseline of the champion's traffic
   before the canary split by the canary's own rule. When the log cannot say that (a table an older
   service created, a log lagging the counters), the judge falls back to the metrics source's
   cumulative counters (one stratum of independent requests), and the event says which. The
   canary's start is the applied event that gave it traffic, read from the event log, so a
   restarted controller computes the same windows.
3. **Act**: ROLLBACK → :meth:`~registry.ModelRegistry.reject` (weight 0, ``challenger``
   removed, version marked rejected); PROMOTE, once the canary has also served
   ``min_canary_seconds`` and ``min_canary_requests`` → :meth:`~registry.ModelRegistry.promote`;
   INCONCLUSIVE → the canary's weight goes to 0 with the challenger kept (paused: a person
   decides, and meanwhile nobody is served by a model whose scores moved for no visible reason);
   CONTINUE → nothing. Every action is one deployment event carrying the verdict and its numbers.
4. **Drift job**, every ``drift_interval_seconds``: each variant's recent inference-log window
   against its version's reference sample; scores exported as the serving drift gauges; input
   drift on the champion asks the retrain trigger (:class:`DriftRetrainTrigger`: the pipeline's
   ``drift`` rule, handed in by whoever wires the controller, recorded, then a local command or,
   on Kubernetes, a Job created through the API, ``monitoring/controller/retrain_job.py``),
   never for a rollback.
5. **Reports**: the HTML drift report of a canary's whole window is written when its verdict is
   acted on and attached to its training run; a champion's when a drift episode starts.

**Restart safety.** Nothing the controller decides lives only in its memory: the canary's start
comes from the event log, Prometheus counts from the canary's start, and the registry's moves
are compare-and-set and no-ops once done. A controller killed right after a move and started
again finds the canary gone (rejected or promoted) and writes nothing; killed inside a move, its
successor's ``reconcile()`` completes it. Either way there is exactly one event per verdict.

**Fail-safe.** If the registry, the metrics or the inference log cannot be read the controller
*holds*: it neither promotes nor rolls back on partial data, sets
``mlplat_controller_holding{reason}`` (alert ``ControllerHolding``) and says why in the cycle
report.

**One decision-maker.** Alertmanager's canary alerts (:meth:`Controller.handle_alerts`) are a
reason to look *now*, not a verdict. ``CanaryDegraded`` makes the controller judge the live
canary at once, through the very path of a window's judgement (:meth:`CanaryWatch.judge_now`:
same sources, same :meth:`~monitoring.judge.CanaryJudge.evaluate`, same action on the verdict);
if the judge says *continue*, nothing moves. The look is numbered with the current window
index ``k`` (completed windows, at least 1) on the data up to now, so it never shifts the
window schedule, hurries a promotion (``min_windows_before_promote``) or brings the window cap
closer; the loop still judges every window. Alerts add at most one look per window index, so
any part of the judge that spends its error budget per look spends at most twice its budget;
the bounds that roll back are anytime-valid and pay nothing for the extra look. The one
exception is the **circuit breaker** (an alert labelled ``breaker="true"``,
``CanaryCircuitBreaker``): a catastrophic failure that needs no statistics (half of at least 50
canary requests failing on the server side in 5 minutes, its false-trip rate is in the rule),
which rolls back without the judge and works while the controller holds. Every event says who
decided (``decided_by``: ``judge`` or ``circuit_breaker``), on which signals, and what
triggered the look (``triggered_by``: ``window k`` or ``alert <name>``).

The package, module by module: the loop (``loop.py``, :class:`Controller`), the live canary
(``canary.py``, its evidence in ``evidence.py``), Alertmanager's alerts (``alerts.py`` for
what they are, ``alert_handler.py`` for what is done about them), the drift job
(``drift_job.py``), the retrain trigger (``retrain.py``; as a Kubernetes Job:
``retrain_job.py`` over ``kubernetes.py``), and the reports a cycle returns (``reports.py``).
"""

from monitoring.controller.alerts import (
    BREAKER_LABEL,
    AlertNotice,
    AlertOutcome,
    is_circuit_breaker,
)
from monitoring.controller.canary import CanaryWatch, canary_started_at
from monitoring.controller.loop import Controller
from monitoring.controller.reports import (
    CanaryReport,
    Clock,
    CycleReport,
    DriftReport,
    deciding_signals,
    utc_now,
)
from monitoring.controller.retrain import (
    DriftRetrainTrigger,
    DriftRule,
    RetrainDecision,
    RetrainRequest,
    RetrainTrigger,
)

__all__ = [
    "BREAKER_LABEL",
    "AlertNotice",
    "AlertOutcome",
    "CanaryReport",
    "CanaryWatch",
    "Clock",
    "Controller",
    "CycleReport",
    "DriftReport",
    "DriftRetrainTrigger",
    "DriftRule",
    "RetrainDecision",
    "RetrainRequest",
    "RetrainTrigger",
    "canary_started_at",
    "deciding_signals",
    "is_circuit_breaker",
    "utc_now",
]
