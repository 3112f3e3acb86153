"""``mlplat deploy …`` as a user types it, against a real MLflow registry (SQLite store).

The guardrails pinned here: promote refuses a version the service would not serve (rejected, or
no passed gate verdict), with no override, and says how a version gets through the gate; reject
ends a canary and names unknown versions; a canary weight outside (0, MAX_CANARY_WEIGHT] is a usage
error before the registry is touched. Every refusal is one line and an exit code, never a
traceback.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mlflow import MlflowClient

from ci.deploy import MAX_CANARY_WEIGHT
from ci.runner import open_from_settings
from mlplat.cli import main
from registry import Action, DeploymentEvent, ModelRegistry, get_settings

pytestmark = pytest.mark.integration

_model_numbers = itertools.count(1)


@dataclass
class Deployer:
    """A user's registry (model of its own on the module's store) and their ``mlplat``."""

    registry: ModelRegistry
    client: MlflowClient
    experiment_id: str
    env: dict[str, str]

    def register(self, gate_verdict: str | None = "passed") -> int:
        """Register a version; ``gate_verdict=None`` leaves the gate tag off."""
        run = self.client.create_run(self.experiment_id)
        lineage = {"data_digest": "sha256:abc", "code_version": "git:1234"}
        if gate_verdict is not None:
            lineage["gate_verdict"] = gate_verdict
        return self.registry.register(
            f"runs:/{run.info.run_id}/model", run.info.run_id, lineage, reason="trained"
        )

    def deploy(self, *args: str) -> Result:
        """``mlplat deploy ARGS`` through the console script's own group, in this process."""
        return CliRunner().invoke(main, ["deploy", *args])

    def last_event(self) -> DeploymentEvent:
        return self.registry.history(limit=1)[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLPLAT_HOME for the module: migrating a fresh MLflow SQLite store costs seconds."""
    return tmp_path_factory.mktemp("deploy-cli-home")


@pytest.fixture
def deployer(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployer]:
    """A model no other test uses, champion-less, with ``MLPLAT_ACTOR=alice``."""
    for name in [n for n in os.environ if n.startswith(("MLPLAT_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    env = {
        "MLPLAT_HOME": str(home),
        "MLPLAT_MODEL_NAME": f"credit-default-{next(_model_numbers)}",
        "MLPLAT_ACTOR": "alice",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    registry = open_from_settings()
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    experiment = client.get_experiment_by_name(get_settings().experiment_name)
    assert experiment is not None
    yield Deployer(registry, client, experiment.experiment_id, {**os.environ})
    get_settings.cache_clear()


def _error_line(result: Result) -> str:
    """The one line a refusal prints; fails on a traceback or a multi-line message."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


# -- promote -------------------------------------------------------------------------------


@pytest.mark.parametrize(("verdict", "shown"), [(None, "None"), ("failed", "'failed'")])
def test_promote_refuses_a_version_without_a_passed_gate_verdict(
    deployer: Deployer, verdict: str | None, shown: str
) -> None:
    """An ungated version stays off the champion: one line naming the verdict and the gate's way."""
    v1, v2 = deployer.register(), deployer.register(gate_verdict=verdict)
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("promote", "--version", str(v2), "--reason", "looks fine")

    assert result.exit_code == 1
    line = _error_line(result)
    assert f"version {v2} has mlplat.gate_verdict={shown}" in line
    assert "cannot become champion" in line
    assert '`mlplat pipeline run --reason "..."`' in line
    assert "--force" not in line
    assert deployer.registry.state().champion == v1
    assert deployer.last_event().action == Action.BOOTSTRAP


def test_promote_refuses_a_rejected_version(deployer: Deployer) -> None:
    """Rejection is final: the line names the rejection and gives no way around it."""
    v1, v2 = deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")
    deployer.registry.reject(v2, reason="canary failed")

    result = deployer.deploy("promote", "--version", str(v2), "--reason", "please")

    assert result.exit_code == 1
    line = _error_line(result)
    assert f"version {v2} is tagged mlplat.status=rejected" in line
    assert "cannot become champion" in line
    assert "mlplat pipeline run" not in line
    assert deployer.registry.state().champion == v1


def test_promote_has_no_force_option(deployer: Deployer) -> None:
    """No flag moves the champion past the gate: ``--force`` is an unknown option (exit 2)."""
    v1, v2 = deployer.register(), deployer.register(gate_verdict=None)
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("promote", "--version", str(v2), "--force", "--reason", "hotfix")

    assert result.exit_code == 2
    assert "No such option '--force'" in result.stderr
    assert deployer.registry.state().champion == v1
    assert deployer.last_event().action == Action.BOOTSTRAP


def test_promote_of_a_gated_version_moves_the_champion(deployer: Deployer) -> None:
    """The guardrail passes a gated version through; the event keeps who and why, as given."""
    v1, v2 = deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("promote", "--version", str(v2), "--reason", "canary passed")

    assert result.exit_code == 0, result.output
    assert deployer.registry.state().champion == v2
    event = deployer.last_event()
    assert (event.action, event.from_version, event.to_version) == (Action.PROMOTE, v1, v2)
    assert (event.actor, event.reason, dict(event.details)) == ("alice", "canary passed", {})
    assert f"promote champion {v1}->{v2} [applied] by alice" in result.stdout


# -- reject --------------------------------------------------------------------------------


def test_reject_ends_the_canary_of_that_version(deployer: Deployer) -> None:
    """Rejecting the challenger tags it, removes the alias and its weight, as one event."""
    v1, v2 = deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")
    deployer.registry.start_canary(v2, 0.2, reason="canary")

    result = deployer.deploy("reject", "--version", str(v2), "--reason", "p99 doubled")

    assert result.exit_code == 0, result.output
    state = deployer.registry.state()
    assert (state.champion, state.challenger, state.canary_weight) == (v1, None, 0.0)
    assert deployer.registry.version(v2).rejected
    event = deployer.last_event()
    assert (event.action, event.actor, event.reason) == (Action.REJECT, "alice", "p99 doubled")
    assert f"reject challenger {v2}->None [applied] by alice: p99 doubled" in result.stdout
    again = deployer.deploy("canary", "--version", str(v2), "--reason", "retry")
    assert again.exit_code == 1
    assert "mlplat.status=rejected" in _error_line(again)


def test_reject_of_a_version_that_is_not_the_canary_keeps_the_canary(
    deployer: Deployer,
) -> None:
    """Rejecting another version tags it and leaves the running canary alone."""
    v1, v2, v3 = deployer.register(), deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")
    deployer.registry.start_canary(v3, 0.1, reason="canary")

    result = deployer.deploy("reject", "--version", str(v2), "--reason", "bad lineage")

    assert result.exit_code == 0, result.output
    assert deployer.registry.version(v2).rejected
    state = deployer.registry.state()
    assert (state.challenger, state.canary_weight) == (v3, 0.1)


def test_reject_twice_says_there_is_nothing_to_do(deployer: Deployer) -> None:
    """A repeated reject writes no event and says so."""
    v1, v2 = deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")
    deployer.registry.reject(v2, reason="bad")
    before = deployer.last_event().id

    result = deployer.deploy("reject", "--version", str(v2), "--reason", "bad, again")

    assert result.exit_code == 0, result.output
    assert f"nothing to do: version {v2} was already rejected" in result.stdout
    assert deployer.last_event().id == before


def test_reject_of_an_unknown_version_names_it(deployer: Deployer) -> None:
    """A typo in the version number is one line naming the model and the version."""
    v1 = deployer.register()
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("reject", "--version", "99", "--reason", "typo")

    assert result.exit_code == 1
    assert f"model '{deployer.registry.model_name}' has no version 99" in _error_line(result)


def test_reject_of_the_champion_is_refused(deployer: Deployer) -> None:
    """The serving champion cannot be rejected; the message says what to do instead."""
    v1 = deployer.register()
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("reject", "--version", str(v1), "--reason", "oops")

    assert result.exit_code == 1
    line = _error_line(result)
    assert f"version {v1} is the champion" in line
    assert "roll back or promote another version first" in line
    assert not deployer.registry.version(v1).rejected


@pytest.mark.parametrize("args", [["--version", "2"], ["--version", "0", "--reason", "x"]])
def test_reject_without_a_reason_or_with_a_bad_version_is_a_usage_error(
    deployer: Deployer, args: list[str]
) -> None:
    """Bad options fail in the parser (exit 2), naming the option."""
    result = deployer.deploy("reject", *args)

    assert result.exit_code == 2
    assert "--reason" in result.stderr or "--version" in result.stderr


# -- canary --------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", ["0.7", "1.0", "0", "-0.1", "nan", "inf"])
def test_canary_weight_outside_the_cap_is_a_usage_error(deployer: Deployer, weight: str) -> None:
    """A weight outside (0, MAX_CANARY_WEIGHT] names the option and the range; nothing moves."""
    v1, v2 = deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")
    before = deployer.last_event().id

    result = deployer.deploy("canary", "--version", str(v2), "--weight", weight)

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Invalid value for '--weight'" in result.stderr
    assert f"(0, {MAX_CANARY_WEIGHT}]" in result.stderr
    assert deployer.registry.state().challenger is None
    assert deployer.last_event().id == before


def test_canary_at_exactly_the_cap_starts(deployer: Deployer) -> None:
    """The cap itself is allowed: the range is closed at MAX_CANARY_WEIGHT."""
    v1, v2 = deployer.register(), deployer.register()
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("canary", "--version", str(v2), "--weight", str(MAX_CANARY_WEIGHT))

    assert result.exit_code == 0, result.output
    state = deployer.registry.state()
    assert (state.challenger, state.canary_weight) == (v2, MAX_CANARY_WEIGHT)


def test_canary_refuses_a_version_without_a_passed_gate_verdict(deployer: Deployer) -> None:
    """The canary and promote guardrails are the same rule: an ungated version gets no traffic."""
    v1, v2 = deployer.register(), deployer.register(gate_verdict=None)
    deployer.registry.bootstrap(v1, reason="first")

    result = deployer.deploy("canary", "--version", str(v2), "--weight", "0.1")

    assert result.exit_code == 1
    line = _error_line(result)
    assert f"version {v2} has mlplat.gate_verdict=None" in line
    assert "cannot take canary traffic" in line
    assert "mlplat pipeline run" in line
    assert deployer.registry.state().challenger is None


# -- as a shell runs it --------------------------------------------------------------------


@pytest.mark.slow
def test_refusals_from_the_console_script_are_one_line_and_an_exit_code(
    deployer: Deployer,
) -> None:
    """``python -m mlplat``: a refused promote exits 1, a bad weight 2, no traceback."""
    v1, v2 = deployer.register(), deployer.register(gate_verdict=None)
    deployer.registry.bootstrap(v1, reason="first")

    def mlplat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlplat", "deploy", *args],
            env=deployer.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    promote = mlplat("promote", "--version", str(v2), "--reason", "looks fine")
    weight = mlplat("canary", "--version", str(v2), "--weight", "0.9")

    assert promote.returncode == 1, promote.stderr
    assert "Traceback" not in promote.stderr
    assert f"Error: version {v2} has mlplat.gate_verdict=None" in promote.stderr
    assert weight.returncode == 2, weight.stderr
    assert "Traceback" not in weight.stderr
    assert "Invalid value for '--weight'" in weight.stderr
    assert deployer.registry.state().champion == v1
