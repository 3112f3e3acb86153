"""Fixtures of the monitoring end-to-end tests (the stack itself is in ``stack.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.monitoring.stack import Deployed, Processes, Tools, deploy, processes_in


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Child processes of one test, all stopped at its end."""
    yield from processes_in(tmp_path)


@pytest.fixture
def deployed(tmp_path: Path) -> Deployed:
    """A registered champion, serving, and a defective and a healthy version to canary."""
    return deploy(tmp_path)


@pytest.fixture
def tools() -> Tools:
    """Prometheus and Alertmanager (skipped locally, a failure under CI=true, when missing)."""
    return Tools.required()
