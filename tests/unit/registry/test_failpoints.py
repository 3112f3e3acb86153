"""Failpoints: off by default, configured only through the registry settings, checked strictly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from registry import RegistrySettings
from registry.failpoints import FailpointError, Failpoints, parse_failpoints

pytestmark = pytest.mark.unit


def test_no_failpoints_by_default_and_every_place_is_a_no_op(tmp_path: Path) -> None:
    """Production never sets MLPLAT_FAILPOINTS: hitting any place does nothing."""
    settings = RegistrySettings(home=tmp_path)
    assert settings.failpoints == ""
    settings.failpoint_actions().hit("registry.before_alias_write")
    Failpoints().hit("registry.after_begin")


def test_the_environment_variable_configures_stalls_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLPLAT_FAILPOINTS sets a stall at one place and an injected error at another."""
    monkeypatch.setenv(
        "MLPLAT_FAILPOINTS", "registry.after_begin=sleep(0.05); registry.after_lock=error"
    )
    points = RegistrySettings(home=tmp_path).failpoint_actions()
    started = time.monotonic()
    points.hit("registry.after_begin")
    assert time.monotonic() - started >= 0.05
    with pytest.raises(FailpointError, match=r"registry\.after_lock"):
        points.hit("registry.after_lock")
    points.hit("registry.before_alias_write")  # not configured: nothing


def test_random_stalls_stay_within_their_bound() -> None:
    """rsleep(S) stalls between 0 and S seconds."""
    points = parse_failpoints("reconcile.after_read_log=rsleep(0.02)")
    started = time.monotonic()
    points.hit("reconcile.after_read_log")
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("registry.nowhere=sleep(1)", r"must be name=action with name one of"),
        ("registry.after_begin", r"must be name=action"),
        ("registry.after_begin=sleep(soon)", r"registry.after_begin: action 'sleep\(soon\)'"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_entry_and_the_rule(
    tmp_path: Path, spec: str, message: str
) -> None:
    """A typo in a failpoint fails settings validation instead of silently injecting nothing."""
    with pytest.raises(ValidationError, match=message):
        RegistrySettings(home=tmp_path, failpoints=spec)
