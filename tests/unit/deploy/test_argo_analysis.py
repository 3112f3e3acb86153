"""Argo Rollouts ends the canary as the judge decides, through the AnalysisTemplate.

promote -> Successful, rollback -> Failed, undecided -> Inconclusive.

Argo itself cannot run here; tests/unit/deploy/argo_analysis.py models its assessment from the
v1.9.1 source (the module says which functions). The metric under test is the one in the
rendered production overlay, so a change to the template is judged by these tests.
"""

from __future__ import annotations

import copy

import pytest

from monitoring.judge import JudgeConfig, Verdict
from tests.unit.deploy.argo_analysis import (
    Answer,
    ModelError,
    Phase,
    WebMetric,
    evaluate_result,
    extract_value_from_rollout,
    resolve_url,
    run_analysis,
)
from tests.unit.deploy.manifests import NAMESPACE, Document, env, one, render

pytestmark = pytest.mark.unit


def _template() -> Document:
    return one(render("production"), "AnalysisTemplate", "mlplat-canary-judge")


@pytest.fixture(scope="module")
def metric() -> WebMetric:
    (only,) = _template()["spec"]["metrics"]
    return WebMetric.from_template(only)


def judge(verdict: str) -> Answer:
    """An answer of the controller's GET /judge: the verdict and the numbers behind it."""
    return Answer.json({"champion": 3, "canary": 4, "verdict": verdict, "window": 17})


def test_judge_verdicts_are_the_ones_the_template_names(metric: WebMetric) -> None:
    """The conditions compare with the judge's own verdict strings."""
    assert metric.success_condition == f'result == "{Verdict.PROMOTE.value}"'
    assert metric.failure_condition == f'result == "{Verdict.ROLLBACK.value}"'
    assert metric.json_path == "{$.verdict}"


def test_a_healthy_canary_ends_successful(metric: WebMetric) -> None:
    """Continue while evidence gathers, then one promote: Successful, the Rollout goes on."""
    run = run_analysis(metric, [*[judge("continue")] * 12, judge("promote"), judge("promote")])
    assert run.phase is Phase.SUCCESSFUL
    assert len(run.measurements) == 13
    assert run.rollout == "next step"


def test_a_regressed_canary_ends_failed_on_the_first_rollback(metric: WebMetric) -> None:
    """FailureLimit 0: the first rollback fails the run and aborts the Rollout."""
    run = run_analysis(metric, [judge("continue"), judge("continue"), judge("rollback")])
    assert run.phase is Phase.FAILED
    assert run.measurements == (Phase.INCONCLUSIVE, Phase.INCONCLUSIVE, Phase.FAILED)
    assert run.rollout == "aborted"


def test_an_undecided_canary_ends_inconclusive_and_pauses(metric: WebMetric) -> None:
    """Undecided answers keep Argo asking up to inconclusiveLimit; one more pauses the Rollout."""
    limit = metric.inconclusive_limit
    assert limit is not None
    still_open = run_analysis(metric, [judge("continue")] * limit)
    assert still_open.phase is Phase.RUNNING
    run = run_analysis(metric, [judge("continue")] * (limit + 5))
    assert run.phase is Phase.INCONCLUSIVE
    assert len(run.measurements) == limit + 1
    assert run.rollout == "paused"


def test_the_judges_own_inconclusive_verdict_counts_as_undecided(metric: WebMetric) -> None:
    """The judge's "inconclusive" (a person must look) is neither promote nor rollback."""
    assert evaluate_result(Verdict.INCONCLUSIVE.value, metric) is Phase.INCONCLUSIVE
    run = run_analysis(metric, [judge("inconclusive"), judge("rollback")])
    assert run.phase is Phase.FAILED


def test_an_unreachable_controller_errors_the_run_only_after_the_limit(metric: WebMetric) -> None:
    """A restart (a few refused looks) does not end the run; a longer outage errors and aborts."""
    limit = metric.consecutive_error_limit
    assert limit is not None
    down = Answer(503, "")
    restarted = run_analysis(metric, [*[down] * limit, judge("continue"), judge("promote")])
    assert restarted.phase is Phase.SUCCESSFUL
    run = run_analysis(metric, [down] * (limit + 3))
    assert run.phase is Phase.ERROR
    assert run.rollout == "aborted"
    missing_field = run_analysis(metric, [Answer.json({"status": "holding"})] * (limit + 1))
    assert missing_field.phase is Phase.ERROR


def test_the_template_is_one_argo_accepts_and_asks_once_per_judge_window(
    metric: WebMetric,
) -> None:
    """ValidateMetric passes; one look per judge window, undecided up to the judge's max_windows."""
    metric.validate()
    controller = one(render("production"), "Deployment", "mlplat-controller")
    (container,) = controller["spec"]["template"]["spec"]["containers"]
    window = env(container)["MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS"]
    assert metric.interval == f"{window}s"
    assert metric.inconclusive_limit == JudgeConfig().max_windows
    assert metric.failure_limit == 0
    assert metric.consecutive_success_limit == 1


def test_the_rollout_asks_about_the_pair_named_in_the_pod_template() -> None:
    """The analysis asks the controller's /judge about the pair CI names in the pod template.

    Argo resolves the Rollout's template from the Deployment (workloadRef) and reads the two
    annotations from it.
    """
    documents = render("production")
    rollout = copy.deepcopy(one(documents, "Rollout", "mlplat-serving"))
    deployment = copy.deepcopy(one(documents, "Deployment", "mlplat-serving"))
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"].update(
        {"mlplat/champion-version": "3", "mlplat/canary-version": "4"}
    )
    rollout["spec"]["template"] = template  # what Argo's workloadRef resolver does
    (step,) = [
        s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s
    ]
    assert [t["templateName"] for t in step["templates"]] == ["mlplat-canary-judge"]
    args = {
        a["name"]: extract_value_from_rollout(rollout, a["valueFrom"]["fieldRef"]["fieldPath"])
        for a in step["args"]
    }
    assert args == {"champion": "3", "canary": "4"}
    assert {a["name"] for a in _template()["spec"]["args"]} == set(args)
    (only,) = _template()["spec"]["metrics"]
    url = resolve_url(only["provider"]["web"]["url"], args)
    assert url == f"http://mlplat-controller.{NAMESPACE}.svc:9200/judge?champion=3&canary=4"
    service = one(documents, "Service", "mlplat-controller")
    assert [p["port"] for p in service["spec"]["ports"]] == [9200]


def test_model_follows_argo_on_single_conditions() -> None:
    """EvaluateResult: one condition alone makes its negation the other; none means success."""
    base = {"name": "m", "provider": {"web": {"url": "http://x", "jsonPath": "{$.v}"}}}
    only_success = WebMetric.from_template({**base, "successCondition": 'result == "ok"'})
    only_failure = WebMetric.from_template({**base, "failureCondition": 'result == "bad"'})
    neither = WebMetric.from_template(base)
    assert evaluate_result("maybe", only_success) is Phase.FAILED
    assert evaluate_result("maybe", only_failure) is Phase.SUCCESSFUL
    assert evaluate_result("bad", only_failure) is Phase.FAILED
    assert evaluate_result("anything", neither) is Phase.SUCCESSFUL
    # Without an interval a metric is measured once (EffectiveCount 1).
    assert run_analysis(only_success, [Answer.json({"v": "ok"})]).phase is Phase.SUCCESSFUL


def test_model_refuses_what_it_does_not_model() -> None:
    """A condition beyond string equality is refused rather than judged wrongly."""
    with pytest.raises(ModelError, match="only result"):
        WebMetric.from_template(
            {
                "name": "m",
                "successCondition": "result > 0.9",
                "provider": {"web": {"url": "http://x", "jsonPath": "{$.v}"}},
            }
        )
