"""Every metric the rules and the dashboard query is one the service or the controller exports.

Grafana cannot run here, so the dashboard is checked the way Grafana would break: a query on a
renamed metric or label shows "No data" without any error. The exported names come from the
metric classes themselves, instantiated on a fresh registry.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from interfaces.metric_names import EIGHT_METRICS
from monitoring.judge import SignalName, Verdict
from monitoring.metrics import CANARY_STATES, HOLD_REASONS, ControllerMetrics
from serving.metrics import ServingMetrics
from tests.conftest import require_tool

pytestmark = pytest.mark.unit

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
DASHBOARD_PATH = MONITORING / "grafana/dashboards/mlplat-serving.json"
DATASOURCE_PATH = MONITORING / "grafana/provisioning/datasources/prometheus.yml"
RECORDING_PATH = MONITORING / "prometheus/rules/recording.yml"
ALERTS_PATH = MONITORING / "prometheus/rules/alerts.yml"

# Series Prometheus makes itself, and labels it attaches to every scraped series.
SYNTHETIC_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$variant": "champion"}

# --- PromQL, read just far enough to find metric names --------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?"
)
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_KEYWORDS |= {"and", "or", "unless", "offset", "inf", "nan"}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _OFFSET.sub("", text)
    names = set()
    for token in _TOKEN.finditer(text):
        name = token.group("name")
        if name and not token.group("call") and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def selector_labels(expr: str) -> Iterator[tuple[str, str]]:
    """Yield (metric, label) for each label matcher written inside a metric's braces."""
    text = _STRING.sub('""', expr)
    for selector in _SELECTOR.finditer(text):
        for label in _MATCHER_LABEL.finditer(selector.group(2)):
            yield selector.group(1), label.group(1)


# --- what the rules and the dashboard query -------------------------------------------------------
def _rules(path: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text())
    return loaded


def _dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) of every query of every panel."""
    return [
        (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def _all_queries() -> list[tuple[str, str]]:
    rule_queries = [
        (f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"])
        for path in (RECORDING_PATH, ALERTS_PATH)
        for rule in _rules(path)
    ]
    return rule_queries + _dashboard_queries()


def _recorded_names() -> set[str]:
    return {rule["record"] for rule in _rules(RECORDING_PATH)}


# --- what the processes export --------------------------------------------------------------------
def _exported_labels() -> dict[str, set[str]]:
    """Every series name the two processes export, with its label names (populated via the API)."""
    serving_registry, controller_registry = CollectorRegistry(), CollectorRegistry()
    serving = ServingMetrics(serving_registry)
    controller = ControllerMetrics(controller_registry)
    # Labelled series appear only once used: exercise each public recorder once.
    serving.set_serving("champion", "3", serving=True)
    serving.observe_scores("champion", "3", 0.01, [0.2])
    serving.record_error("internal", "champion", "3")
    serving.record_input_issue("age", "null")
    serving.record_input_records(accepted=1, rejected=1)
    serving.observe_batch(rows=1, queued_rows=0)
    serving.set_canary_weight(0.1)
    serving.record_load_failure("canary", "4")
    serving.record_feedback("joined", "champion", "3", "tp")
    serving.record_drift("champion", "3", {"age": 0.1}, drifted_ratio=0.0, checked_at=1.0)
    serving.set_log_queue_depth(0)
    controller.record_verdict(Verdict.CONTINUE)
    controller.set_signal(SignalName.LATENCY, 1.0, 0.9, 1.1)
    controller.set_canary_state("4", "observing")
    controller.set_holding([])
    controller.record_cycle(1.0)
    controller.record_retrain_trigger()
    controller.record_webhook("accepted")
    controller.record_drift("champion", "3", {"age": 0.1}, drifted_ratio=0.0, checked_at=1.0)

    exported: dict[str, set[str]] = {}
    for registry in (serving_registry, controller_registry):
        for family in registry.collect():
            # Counter families are named without _total; the series carry it.
            series = {"counter": [f"{family.name}_total"], "gauge": [family.name]}.get(
                family.type,
                # A histogram's own name selects nothing; its three series do.
                [f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"],
            )
            for name in series:
                exported.setdefault(name, set())
            for sample in family.samples:
                if sample.name in exported:
                    exported[sample.name] |= set(sample.labels)
    return exported


# --- the PromQL reader itself ---------------------------------------------------------------------
def test_metric_names_skips_functions_keywords_labels_and_numbers() -> None:
    """The reader finds only selected metrics, in the constructs the rules and panels use."""
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{le="0.1", x=~"b|c"}[5m])))'
        " / on (job) group_left () b:rec:ratio_rate5m > bool 1e-3"
        ' and time() - max without (instance) (c_seconds offset 1h) or vector(0) * d{y="or"}'
        ' + label_replace(e_total, "signal", "error_rate", "", "")'
    )
    assert metric_names(expr) == {"a_bucket", "b:rec:ratio_rate5m", "c_seconds", "d", "e_total"}


def test_selector_labels_reads_matchers_inside_braces() -> None:
    """Label matchers are read per metric, including regex and negative ones."""
    pairs = set(selector_labels('rate(a{x="1", y!~"2"}[5m]) + b{z=~".*"} + c'))
    assert pairs == {("a", "x"), ("a", "y"), ("b", "z")}


# --- the checks -----------------------------------------------------------------------------------
def test_every_queried_metric_is_exported_or_recorded() -> None:
    """Rules and panels query only series serving/ or monitoring/ export, or rules record."""
    known = set(_exported_labels()) | _recorded_names() | set(SYNTHETIC_SERIES)
    unknown = {
        (where, name)
        for where, expr in _all_queries()
        for name in metric_names(expr)
        if name not in known
    }
    assert unknown == set()


def test_every_label_matcher_names_a_label_the_metric_has() -> None:
    """A matcher on a misspelt label selects nothing, silently; none of the queries has one."""
    exported = _exported_labels()
    labels = {name: names | TARGET_LABELS for name, names in exported.items()}
    labels.update(SYNTHETIC_SERIES)
    recorded = _recorded_names()
    wrong = {
        (where, metric, label)
        for where, expr in _all_queries()
        for metric, label in selector_labels(expr)
        if metric not in recorded and label not in labels.get(metric, set())
    }
    assert wrong == set()


def test_recording_rules_read_only_exported_series() -> None:
    """The recording rules themselves are built on exported series or earlier recorded ones."""
    exported = set(_exported_labels()) | set(SYNTHETIC_SERIES)
    seen: set[str] = set()
    for rule in _rules(RECORDING_PATH):
        assert metric_names(rule["expr"]) <= exported | seen, rule["record"]
        seen.add(rule["record"])


def test_dashboard_shows_the_eight_metrics_and_the_canary_state() -> None:
    """Each of the eight serving metrics, and the controller's canary series, has a panel."""
    queried = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for _, expr in _dashboard_queries()
        for name in metric_names(expr)
    }
    recorded_from = {
        name
        for rule in _rules(RECORDING_PATH)
        if rule["record"] in queried
        for name in metric_names(rule["expr"])
    }
    shown = queried | {re.sub(r"_(bucket|sum|count)$", "", name) for name in recorded_from}
    canary = {
        "mlplat_canary_weight_ratio",
        "mlplat_canary_state",
        "mlplat_canary_verdicts_total",
        "mlplat_controller_holding",
        "mlplat_canary_signal_estimate",
        "mlplat_drifted_features_ratio",
    }
    assert set(EIGHT_METRICS) - shown == set()
    assert canary - shown == set()


def test_dashboard_is_valid_with_unique_panel_ids() -> None:
    """The JSON parses, has a uid and title, and no two panels share an id or overlap a row."""
    dashboard = _dashboard()
    assert dashboard["uid"] == "mlplat-serving"
    assert dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


def test_dashboard_uses_the_provisioned_datasource() -> None:
    """Every panel and query names the datasource uid that provisioning creates."""
    (datasource,) = yaml.safe_load(DATASOURCE_PATH.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    uid = datasource["uid"]
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every panel query parses in promtool (Grafana variables replaced by sample values)."""
    rules = []
    for index, (_, expr) in enumerate(_dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query_{index}:check", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- the controller metrics the rules rely on -----------------------------------------------------
def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_controller_exports_every_hold_reason_at_zero_from_the_start() -> None:
    """max(mlplat_controller_holding) is 0 before any hold, not empty (ControllerHolding)."""
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    assert set(_samples(registry, "mlplat_controller_holding").values()) == {0.0}
    metrics.set_holding(["stale_metrics"])
    holding = _samples(registry, "mlplat_controller_holding")
    assert len(holding) == len(HOLD_REASONS)
    assert holding[(("reason", "stale_metrics"),)] == 1.0
    assert sum(holding.values()) == 1.0


def test_controller_canary_state_is_one_hot_for_the_latest_canary_only() -> None:
    """A new canary replaces the old one's series; exactly one state is 1 (CanaryPaused)."""
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.set_canary_state("4", "rolled_back")
    metrics.set_canary_state("5", "paused")
    states = _samples(registry, "mlplat_canary_state")
    assert {dict(labels)["model_version"] for labels in states} == {"5"}
    assert len(states) == len(CANARY_STATES)
    assert [dict(labels)["state"] for labels, value in states.items() if value == 1] == ["paused"]
    metrics.set_canary_state(None, None)
    assert _samples(registry, "mlplat_canary_state") == {}


def test_controller_removes_a_signal_estimate_the_judge_does_not_have() -> None:
    """A missing or infinite estimate disappears instead of plotting a stale or absurd value."""
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.set_signal(SignalName.ERROR_RATE, 0.02, 0.01, 0.03)
    metrics.set_signal(SignalName.ERROR_RATE, None, float("inf"), 0.03)
    assert _samples(registry, "mlplat_canary_signal_estimate") == {}
    assert _samples(registry, "mlplat_canary_signal_bound") == {
        (("bound", "upper"), ("signal", "error_rate")): 0.03
    }


def test_controller_refuses_label_values_outside_its_closed_sets() -> None:
    """An unknown reason, state or outcome is a bug: it raises instead of adding a series."""
    metrics = ControllerMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match="reason must be one of"):
        metrics.set_holding(["tired"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="state must be one of"):
        metrics.set_canary_state("4", "sleeping")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="given together"):
        metrics.set_canary_state("4", None)
    with pytest.raises(ValueError, match="outcome must be one of"):
        metrics.record_webhook("lost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drifted_ratio must be within"):
        metrics.record_drift("champion", "3", {}, drifted_ratio=1.5, checked_at=0.0)


def test_controller_metrics_leave_the_default_registry_alone() -> None:
    """Two instances on fresh registries coexist: nothing registers globally."""
    first, second = CollectorRegistry(), CollectorRegistry()
    ControllerMetrics(first).record_verdict(Verdict.ROLLBACK)
    ControllerMetrics(second)
    verdicts = _samples(first, "mlplat_canary_verdicts_total")
    assert verdicts[(("verdict", "rollback"),)] == 1.0
    assert len(verdicts) == len(Verdict)
