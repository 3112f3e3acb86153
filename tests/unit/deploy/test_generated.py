"""The PrometheusRules and the AlertmanagerConfig, generated from the compose stack's files.

They carry exactly the rules that promtool checks and tests.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import require_tool
from tests.unit.deploy.manifests import NAMESPACE, ROOT, Document, one, render

pytestmark = pytest.mark.unit

PROMETHEUS = ROOT / "monitoring" / "prometheus"
ALERTMANAGER = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"


def _generator() -> ModuleType:
    path = ROOT / "deploy" / "kubernetes" / "generate.py"
    spec = importlib.util.spec_from_file_location("deploy_kubernetes_generate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


generate = _generator()


def _rule_groups(documents: tuple[Document, ...]) -> dict[str, list[Document]]:
    """PrometheusRule name -> its groups, as rendered."""
    return {
        d["metadata"]["name"]: d["spec"]["groups"]
        for d in documents
        if d["kind"] == "PrometheusRule"
    }


def _extract(documents: tuple[Document, ...], folder: Path) -> list[Path]:
    """Write each PrometheusRule's groups as the rule file it came from.

    mlplat-alerts becomes rules/alerts.yml, beside a copy of the promtool tests, which name
    ../rules/*.yml.
    """
    (folder / "rules").mkdir()
    written = []
    for name, groups in _rule_groups(documents).items():
        path = folder / "rules" / f"{name.removeprefix('mlplat-')}.yml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        written.append(path)
    shutil.copytree(PROMETHEUS / "tests", folder / "tests")
    return written


def test_regenerating_gives_the_committed_files() -> None:
    """An edited rule, route or copied file that was not regenerated fails here.

    Fix: `python deploy/kubernetes/generate.py`.
    """
    assert generate.stale() == []


def test_prometheus_rules_hold_exactly_the_rule_files_groups() -> None:
    """One PrometheusRule per rule file, each holding that file's groups unchanged."""
    groups = _rule_groups(render("production"))
    expected = {
        f"mlplat-{path.stem}": yaml.safe_load(path.read_text())["groups"]
        for path in sorted((PROMETHEUS / "rules").glob("*.yml"))
    }
    assert groups == expected


def test_extracted_rule_groups_pass_promtool_check(tmp_path: Path) -> None:
    """`promtool check rules` accepts the groups as the rendered PrometheusRules carry them."""
    promtool = require_tool("promtool")
    files = _extract(render("production"), tmp_path)
    done = subprocess.run(
        [promtool, "check", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files)


def test_promtool_rule_tests_pass_on_the_extracted_groups(tmp_path: Path) -> None:
    """The project's `promtool test rules` suites pass against the rendered rules.

    So the cluster evaluates exactly the rules those tests pin.
    """
    promtool = require_tool("promtool")
    _extract(render("production"), tmp_path)
    tests = sorted((tmp_path / "tests").glob("*.test.yml"))
    assert tests
    done = subprocess.run(
        [promtool, "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path / "tests",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_config_routes_as_alertmanager_yml() -> None:
    """Receivers, routes and inhibitions are alertmanager.yml's.

    The webhooks point at the Services that replace compose's hosts, and the top route takes
    the platform's alerts only.
    """
    documents = render("production")
    config = one(documents, "AlertmanagerConfig", "mlplat")["spec"]
    source = yaml.safe_load(ALERTMANAGER.read_text())
    assert [r["name"] for r in config["receivers"]] == [r["name"] for r in source["receivers"]]
    services = {
        f"{d['metadata']['name']}.{NAMESPACE}.svc:{p['port']}"
        for d in documents
        if d["kind"] == "Service"
        for p in d["spec"]["ports"]
    }
    for receiver in config["receivers"]:
        for hook in receiver["webhookConfigs"]:
            assert hook["url"].split("/")[2] in services, hook["url"]
    route = config["route"]
    ours = route["matchers"][0]
    assert ours["name"] == "alertname"
    assert ours["matchType"] == "=~"
    assert set(ours["value"].split("|")) == set(generate.alert_names())
    assert route["receiver"] == source["route"]["receiver"]
    assert [r["receiver"] for r in route["routes"]] == [
        r["receiver"] for r in source["route"]["routes"]
    ]
    canary = route["routes"][0]
    assert canary["matchers"] == [{"name": "component", "matchType": "=", "value": "canary"}]
    assert len(config["inhibitRules"]) == len(source["inhibit_rules"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('component="canary"', ("component", "=", "canary")),
        ('alertname!="ServingDown"', ("alertname", "!=", "ServingDown")),
        ('alertname=~"A|B"', ("alertname", "=~", "A|B")),
        ('job !~ "x"', ("job", "!~", "x")),
    ],
)
def test_matchers_translate(text: str, expected: tuple[str, str, str]) -> None:
    """Alertmanager's matcher strings become name/matchType/value."""
    name, operator, value = expected
    assert generate.parse_matcher(text, "here") == {
        "name": name,
        "matchType": operator,
        "value": value,
    }


def test_generator_refuses_what_it_cannot_translate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route setting with no translation is an error naming it, never dropped silently."""
    source = yaml.safe_load(ALERTMANAGER.read_text())
    source["route"]["routes"][0]["mute_time_intervals"] = ["nights"]
    edited = tmp_path / "alertmanager.yml"
    edited.write_text(yaml.safe_dump(source))
    monkeypatch.setattr(generate, "ALERTMANAGER_FILE", edited)
    with pytest.raises(generate.GenerateError, match=r"routes\[0\].*mute_time_intervals"):
        generate.alertmanager_config()


def test_generator_refuses_an_unknown_receiver_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook to a host with no Service mapping is refused, naming the receiver."""
    source = yaml.safe_load(ALERTMANAGER.read_text())
    source["receivers"][1]["webhook_configs"][0]["url"] = "http://pager:9999/hook"
    edited = tmp_path / "alertmanager.yml"
    edited.write_text(yaml.safe_dump(source))
    monkeypatch.setattr(generate, "ALERTMANAGER_FILE", edited)
    with pytest.raises(generate.GenerateError, match=r"receivers\[1\].*'pager:9999'"):
        generate.alertmanager_config()
