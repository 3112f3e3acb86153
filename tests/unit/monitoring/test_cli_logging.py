"""``mlplat monitor`` logs the controller's decisions, not every HTTP request it makes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

import monitoring.cli
from mlplat.monitor import monitor

pytestmark = pytest.mark.unit

# A fresh interpreter: logging is configured once per process, as in the real command.
SCRIPT = """
import logging, sys
import httpx
from monitoring.cli import configure_logging

configure_logging(sys.argv[1])
transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "success"}))
with httpx.Client(transport=transport) as client:
    client.get("http://prometheus:9090/api/v1/query", params={"query": "up"})
logging.getLogger("monitoring.controller").info("canary 2 judged at window 3: continue")
logging.getLogger("registry.registry").info("read the deployment state")
logging.getLogger("httpx").warning("a library's warning")
"""


def logged(level: str) -> str:
    """What a process that configured ``level`` wrote to stderr."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, level],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stderr


def test_at_info_the_controller_speaks_and_httpx_requests_stay_quiet() -> None:
    """The default level: project INFO lines show, httpx's per-request INFO line does not."""
    text = logged("info")
    assert "INFO monitoring.controller: canary 2 judged at window 3: continue" in text
    assert "INFO registry.registry: read the deployment state" in text
    assert "HTTP Request" not in text
    assert "WARNING httpx: a library's warning" in text


def test_debug_shows_the_libraries_too() -> None:
    """``--log-level debug`` is for looking inside: each Prometheus query is logged then."""
    text = logged("debug")
    assert "HTTP Request: GET http://prometheus:9090/api/v1/query?query=up" in text
    assert "canary 2 judged" in text


def test_warning_hides_the_projects_info_lines() -> None:
    """A level above INFO applies to the project's loggers as well."""
    text = logged("warning")
    assert "canary 2 judged" not in text
    assert "a library's warning" in text


def test_the_monitor_command_configures_logging_from_its_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``mlplat monitor --log-level`` goes through configure_logging before anything else."""
    levels: list[str] = []
    monkeypatch.setattr(monitoring.cli, "configure_logging", levels.append)
    result = CliRunner().invoke(
        monitor, ["--log-level", "warning", "--prometheus-url", "http://p:9090", "--scrape", "x"]
    )
    assert result.exit_code == 2, result.output  # the flags conflict: stops after logging is set
    assert levels == ["warning"]
