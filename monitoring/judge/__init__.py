"""The canary judge: continue, promote, roll back, or stop and page a human.

The controller calls :meth:`CanaryJudge.evaluate` after every window (and at once when an alert
asks for a look) with everything known about the champion and the canary since the canary
started. Each signal compares canary with champion on the *same* traffic period:

=======================  =========================================  ==============================
signal                   statistic (canary - champion)              method
=======================  =========================================  ==============================
``error_rate``           difference of server-error rates           anytime-valid CS (rates)
``latency``              ratio of geometric-mean latencies          anytime-valid CS (mean of logs)
``latency_tail``         difference of the shares slower than the   anytime-valid CS (rates)
                         champion's tail quantile (p99)
``quality``              difference of mean per-row log loss        anytime-valid CS (means)
                         on delayed labels
``slice_error_rate``     ``error_rate`` within each traffic slice    one CS per slice
``slice_quality``        ``quality`` within each traffic slice       one CS per slice
``prediction_distribution``  PSI of the score histograms           guardrail, alpha spent per look
=======================  =========================================  ==============================

Every comparison is **time-matched** and **cluster-robust** (:mod:`monitoring.judge.evidence`): the
variants are compared only within the same windows, so a platform-wide drift during a weight
ramp cancels, and the variance is estimated over routing-key groups, so customers whose requests
are correlated (and routed to one variant, sticky) do not pass for independent evidence.

Each comparison has two effect sizes. The **floor** is the smallest regression worth a rollback:
the judge rolls back only when the anytime-valid lower bound clears it. The **margin** is the
largest regression a promotion may accept: a signal is *not worse* when the anytime-valid upper
bound is below it. The bounds come from :mod:`monitoring.judge.sequential` and stay valid however
the judge looks, so a canary within every floor is rolled back with probability at most
``alpha_rollback`` over its whole life. That budget is split evenly across every test that can
roll back — four whole-traffic signals plus two per slice — and a canary beyond a margin is
promoted with probability at most ``alpha_promote`` (an intersection-union test needs no split).

The error-rate margin is relative *and* absolute: ``max(error_rate_margin_min,
min(error_rate_margin, error_rate_relative_margin * champion rate))``. At a 1 % champion it is
half a point; against a champion with no errors it is 0.05 points, so a canary that brings new
errors to a clean service is never promoted (and is rolled back once its errors clear the floor).

Verdict rules, in order of precedence:

1. **ROLLBACK** when any signal that may roll back is confidently worse than its floor —
   unless the only harm is latency and quality is confidently *better*: that trade-off is a
   person's (rule 2).
2. **INCONCLUSIVE** (pause, page a human) when signals disagree in a way rules cannot settle:
   slower but better, or the prediction distribution moved beyond its guardrail with no harm
   shown (an intended change or a broken feature; only a person knows which).
3. **PROMOTE** when every signal required for promotion — error rate, latency, its tail, every
   slice with at least ``slice_min_share`` of the canary's traffic, the prediction distribution,
   and quality if ``quality_required_for_promotion`` — is *not worse* than its margin, none is
   worse, and ``min_windows_before_promote`` windows have passed. A signal whose data is not
   collected at all (``not_collected``) does not block, and says so. Quality is not required by
   default: with delayed, partial labels it rarely has the sample to prove a small margin, so it
   is a tripwire for gross regressions and the offline gate guards small ones.
4. **Slow evidence extends the canary; stuck evidence pages.** At ``max_windows`` an undecided
   canary keeps running quietly when every open signal is *on course* — its upper bound, at the
   information the canary will have by ``max_windows * extension_factor`` windows, would be
   below the margin (a slice: it will reach its minimum sample). Otherwise, or at that hard cap,
   the verdict is **INCONCLUSIVE** and names the signal that cannot settle (an estimate sitting
   between floor and margin will not be decided by more of the same traffic).
5. **CONTINUE** otherwise (including while minimum samples are not reached).

Everything is computed on arrays with a leading batch axis (:meth:`CanaryJudge.decide`), so the
simulation benchmark judges a thousand canaries with the very code the controller runs on one.

The package, module by module:

- :mod:`~monitoring.judge.config` — :class:`JudgeConfig`, the floors, margins and budgets;
- :mod:`~monitoring.judge.results` — verdicts, decisions, signal names and the judge's result;
- :mod:`~monitoring.judge.judge` — :class:`CanaryJudge`, which combines the signals'
  readings (:mod:`~monitoring.judge.signals`) into a verdict and says why
  (:mod:`~monitoring.judge.reasons`);
- :mod:`~monitoring.judge.sequential` — anytime-valid confidence sequences;
  :mod:`~monitoring.judge.psi` — the prediction-distribution guardrail;
- :mod:`~monitoring.judge.evidence` — time-matched, cluster-robust evidence, built from
  cumulative counters (:mod:`~monitoring.judge.observation`, :mod:`~monitoring.judge.counters`)
  or from the inference log's rows (:mod:`~monitoring.judge.log_evidence`,
  :mod:`~monitoring.judge.log_rows`, :mod:`~monitoring.judge.baseline`).

This ``__init__`` re-exports the judge's own API (numpy, scipy and pydantic only); the evidence
builders from counters and from the log (which need ``interfaces`` and pandas) are imported from
their modules.
"""

from monitoring.judge.config import JudgeConfig
from monitoring.judge.evidence import CanaryEvidence
from monitoring.judge.judge import CanaryJudge
from monitoring.judge.observation import (
    CanaryObservation,
    JudgeInputError,
    LatencySummary,
    LossSummary,
    ScoreHistogram,
    VariantWindow,
)
from monitoring.judge.results import (
    DECISION_BY_CODE,
    VERDICT_BY_CODE,
    BatchJudgement,
    Decision,
    DecisionCode,
    JudgeResult,
    SignalArrays,
    SignalName,
    SignalResult,
    Verdict,
    VerdictCode,
)

__all__ = [
    "DECISION_BY_CODE",
    "VERDICT_BY_CODE",
    "BatchJudgement",
    "CanaryEvidence",
    "CanaryJudge",
    "CanaryObservation",
    "Decision",
    "DecisionCode",
    "JudgeConfig",
    "JudgeInputError",
    "JudgeResult",
    "LatencySummary",
    "LossSummary",
    "ScoreHistogram",
    "SignalArrays",
    "SignalName",
    "SignalResult",
    "VariantWindow",
    "Verdict",
    "VerdictCode",
]
