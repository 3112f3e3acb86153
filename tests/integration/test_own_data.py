"""Your own data, no code edits: the README's path on a second, real dataset.

scikit-learn's bundled breast-cancer table (569 rows, 30 numeric features, a 0/1 label; it ships
inside the package, nothing is downloaded) is written to a CSV, and then, as a user would, through
the real CLI in subprocesses with a temporary ``MLPLAT_*`` environment: ``mlplat init`` drafts its
contract, ``mlplat pipeline check-config`` says what 569 rows do to the gates, ``mlplat pipeline
run --data`` registers a champion in a temporary SQLite MLflow store (and refuses to register the
same snapshot twice), a second snapshot becomes challenger and takes a canary, ``mlplat serve``
answers ``/predict`` for the contract's example record from both variants, and ``mlplat traffic
--data`` replays the CSV's rows, labels included, while ``mlplat monitor`` judges the canary.
The contract names neither a routing key nor a slice column, so this also pins that both are
optional.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# 569 rows are below the platform's default min_rows (1000) and the benign share (0.63) is
# above the default label band: the user's one override file, as check-config asks for it.
PARAMS = """\
validation:
  min_rows: 400
  min_default_rate: 0.3
  max_default_rate: 0.9
"""
SERVE_DEADLINE_S = 120.0


@dataclass
class Done:
    """One command's exit code and output."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The JSON summary the command printed on stdout."""
        assert self.stdout.strip(), f"no JSON on stdout; stderr:\n{self.stderr}"
        loaded: dict[str, Any] = json.loads(self.stdout)
        return loaded


@dataclass
class Walkthrough:
    """The folder, the environment and every step's outcome."""

    home: Path
    env: dict[str, str]
    steps: dict[str, Done]
    answers: list[dict[str, Any]]
    verdict: dict[str, Any]


def mlplat(env: dict[str, str], cwd: Path, *args: str) -> Done:
    """Run ``mlplat ARGS`` as the user would, in ``cwd``."""
    done = subprocess.run(
        [sys.executable, "-m", "mlplat", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def start(env: dict[str, str], home: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """Start ``mlplat ARGS`` in the background, its output in ``<name>.log``."""
    with (home / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mlplat", *args],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a background command and reap it."""
    process.terminate()
    process.wait(timeout=30)


def alive(process: subprocess.Popen[bytes], home: Path, name: str) -> None:
    """Wait one poll interval; fail with the log's tail if the process died meanwhile."""
    try:
        process.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        return
    pytest.fail(f"mlplat {name} exited:\n{(home / f'{name}.log').read_text()[-3000:]}")


def predict_until_both_answer(
    url: str, process: subprocess.Popen[bytes], home: Path, record: dict[str, Any]
) -> list[dict[str, Any]]:
    """POST the record until the champion and the canary have both answered (or time is up)."""
    answers: list[dict[str, Any]] = []
    deadline = time.monotonic() + SERVE_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            response = httpx.post(f"{url}/predict", json={"records": [record]}, timeout=5)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            answers.append(response.json())
            if {a["predictions"][0]["variant"] for a in answers} == {"champion", "canary"}:
                break
        alive(process, home, "serve")
    return answers


def judge_canary(env: dict[str, str], home: Path, serving: str) -> tuple[Done, dict[str, Any]]:
    """Run ``mlplat monitor`` and ``mlplat traffic --data`` against the service; ask the judge."""
    port = free_port()
    monitor_env = {
        **env,
        "MLPLAT_MONITOR_ENVIRONMENT": "dev",
        "MLPLAT_MONITOR_PORT": str(port),
        "MLPLAT_MONITOR_SERVING_METRICS_URLS": json.dumps([f"{serving}/metrics"]),
        "MLPLAT_MONITOR_INTERVAL_SECONDS": "2",
        "MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS": "5",
        "MLPLAT_MONITOR_MIN_CANARY_SECONDS": "0",
        "MLPLAT_MONITOR_MIN_CANARY_REQUESTS": "50",
    }
    monitor = start(monitor_env, home, "monitor", "monitor")
    verdict: dict[str, Any] = {}
    try:
        traffic = mlplat(
            env, home, "traffic", "--url", serving, "--data", "data.csv", "--rate", "25",
            "--duration", "12", "--label-delay", "0.5", "--json",
        )  # fmt: skip
        deadline = time.monotonic() + SERVE_DEADLINE_S
        while time.monotonic() < deadline and not verdict:
            try:
                pair = {"champion": 1, "canary": 2}
                response = httpx.get(f"http://127.0.0.1:{port}/judge", params=pair, timeout=10)
                if response.status_code == 200 and response.json().get("verdict"):
                    verdict = response.json()
            except httpx.TransportError:
                pass
            alive(monitor, home, "monitor")
    finally:
        stop(monitor)
    return traffic, verdict


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Walkthrough:
    """Every command of the walkthrough, once, in a fresh folder and store."""
    from sklearn.datasets import load_breast_cancer

    home = tmp_path_factory.mktemp("own-data")
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(home / "data.csv", index=False)
    # A second snapshot: the same table a week later, twelve rows fewer.
    frame.iloc[12:].to_csv(home / "data-v2.csv", index=False)
    (home / "params.yml").write_text(PARAMS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    env |= {"MLPLAT_HOME": str(home / "store"), "MLPLAT_ACTOR": "pytest"}
    steps = {
        "init-bad-target": mlplat(env, home, "init", "data.csv", "--target", "diagnosis"),
        "init": mlplat(env, home, "init", "data.csv", "--target", "target"),
    }
    env["MLPLAT_CONTRACT"] = str(home / "contract.yml")
    steps["check-default"] = mlplat(env, home, "pipeline", "check-config", "--data", "data.csv")
    env["MLPLAT_PIPELINE_CONFIG"] = str(home / "params.yml")
    steps["check"] = mlplat(env, home, "pipeline", "check-config", "--data", "data.csv")
    steps["missing-file"] = mlplat(env, home, "pipeline", "run", "--data", "nope.csv")
    run = ("pipeline", "run", "--json", "--data")
    steps["run"] = mlplat(env, home, *run, "data.csv")
    steps["again"] = mlplat(env, home, *run, "data.csv")
    steps["v2"] = mlplat(env, home, *run, "data-v2.csv")
    steps["canary"] = mlplat(env, home, "deploy", "canary", "--version", "2", "--weight", "0.5")
    record = yaml.safe_load((home / "contract.yml").read_text(encoding="utf-8"))["example"]
    port = free_port()
    serve = start({**env, "MLPLAT_SERVING_ENVIRONMENT": "dev"}, home, "serve", "serve",
                  "--port", str(port))  # fmt: skip
    try:
        answers = predict_until_both_answer(f"http://127.0.0.1:{port}", serve, home, record)
        steps["traffic"], verdict = judge_canary(env, home, f"http://127.0.0.1:{port}")
    finally:
        stop(serve)
    return Walkthrough(home, env, steps, answers, verdict)


def test_init_drafts_a_contract_without_key_or_segment(walk: Walkthrough) -> None:
    """Init writes a valid contract of the 30 features; it names no routing key nor slice."""
    done = walk.steps["init"]
    assert done.returncode == 0, done.stderr
    assert "30 features, target 'target'" in done.stdout
    contract = yaml.safe_load((walk.home / "contract.yml").read_text(encoding="utf-8"))
    assert len(contract["features"]) == 30
    assert "segment" not in contract
    assert "entity_id" not in contract


def test_a_missing_target_column_is_one_line(walk: Walkthrough) -> None:
    """Init with a target the file lacks exits 1 naming the column, without a traceback."""
    done = walk.steps["init-bad-target"]
    assert done.returncode == 1
    assert "diagnosis" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_says_what_569_rows_do_to_the_gates(walk: Walkthrough) -> None:
    """With the defaults validation is bound to fail (exit 3); with the user's file it is not."""
    default = walk.steps["check-default"]
    assert default.returncode == 3, default.stderr
    assert "569 rows < min_rows 1000" in default.stdout
    assert "slice gates skipped: the contract names no segment column" in default.stdout
    tuned = walk.steps["check"]
    assert tuned.returncode == 0, tuned.stderr
    assert "validation will fail" not in tuned.stdout
    assert "AUC non-regression at noise level" in tuned.stdout


def test_a_missing_data_file_is_one_line(walk: Walkthrough) -> None:
    """Pipeline run --data on a file that does not exist exits 1 with a one-line message."""
    done = walk.steps["missing-file"]
    assert done.returncode == 1
    assert "nope.csv does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_first_run_registers_a_champion_from_the_csv(walk: Walkthrough) -> None:
    """The CSV trains, passes every gate and becomes version 1, champion; notes are kept."""
    done = walk.steps["run"]
    assert done.returncode == 0, done.stderr
    summary = done.json()
    assert (summary["outcome"], summary["model_version"], summary["alias"]) == (
        "registered",
        1,
        "champion",
    )
    assert summary["metrics"]["auc"] > 0.9
    assert "569 rows read from data.csv" in done.stderr
    checks = {n["check"] for n in summary["size_notes"]}
    assert "gates.slice_auc_margin" in checks


def test_an_unchanged_snapshot_registers_nothing(walk: Walkthrough) -> None:
    """The same CSV again: the run says the snapshot is unchanged, registers nothing, exits 0."""
    done = walk.steps["again"]
    assert done.returncode == 0, done.stderr
    summary = done.json()
    assert summary["outcome"] == "unchanged"
    assert summary["model_version"] is None
    assert summary["data_digest"] == walk.steps["run"].json()["data_digest"]
    assert "version 1 was trained on these rows" in summary["reasons"][0]


def test_a_new_snapshot_becomes_challenger_and_takes_a_canary(walk: Walkthrough) -> None:
    """The second CSV passes the gate against the champion; the canary starts on it."""
    done = walk.steps["v2"]
    assert done.returncode == 0, done.stderr
    summary = done.json()
    assert (summary["model_version"], summary["alias"]) == (2, "challenger")
    canary = walk.steps["canary"]
    assert canary.returncode == 0, canary.stderr
    assert "canary" in canary.stdout


def test_serve_answers_the_example_record_from_both_variants(walk: Walkthrough) -> None:
    """/predict scores the contract's example: the champion and the canary both answer."""
    assert walk.answers, (walk.home / "serve.log").read_text()[-3000:]
    predictions = [a["predictions"][0] for a in walk.answers]
    assert all(0.0 <= p["probability"] <= 1.0 for p in predictions)
    by_variant = {p["variant"]: p["model_version"] for p in predictions}
    assert by_variant == {"champion": 1, "canary": 2}


def test_the_canary_is_judged_on_traffic_drawn_from_the_csv(walk: Walkthrough) -> None:
    """Traffic --data reaches both variants with labels; the judge gives a verdict on them."""
    done = walk.steps["traffic"]
    assert done.returncode == 0, done.stderr
    stats = done.json()
    assert stats["ok"] == stats["sent"] > 0
    assert set(stats["by_variant"]) == {"champion", "canary"}
    assert stats["labels_sent"] > 0
    log = (walk.home / "monitor.log").read_text()[-3000:]
    assert walk.verdict, log
    assert walk.verdict["verdict"] in {"continue", "promote", "rollback", "inconclusive"}
    assert walk.verdict["reason"]
