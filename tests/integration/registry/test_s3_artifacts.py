"""MLflow's artifacts in an S3-compatible bucket, configured as the Kubernetes base configures it.

``deploy/kubernetes/base/mlflow/deployment.yaml`` gives ``mlflow server`` its bucket through the
environment only (``MLFLOW_ARTIFACTS_DESTINATION``, ``MLFLOW_S3_ENDPOINT_URL`` and the AWS key
pair), which needs boto3 in the image. Here a real ``mlflow server`` gets exactly those
variables, read from the rendered manifest, and the bucket is moto's S3 server — a real HTTP
server speaking the S3 API, standing in for MinIO or AWS S3, which cannot run here. A model the
platform logs through the tracking server lands in the bucket and loads back identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import mlflow
import numpy as np
import pytest
import yaml

from pipeline.config import ModelConfig
from pipeline.data import generate
from pipeline.model_io import load_model, log_model
from pipeline.tracking import mlflow_store
from pipeline.train import fit
from tests.integration.conftest import _stop, wait_until_healthy
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEPLOYMENT = Path(__file__).parents[3] / "deploy/kubernetes/base/mlflow/deployment.yaml"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _manifest_destination() -> str:
    """The bucket URL the Kubernetes base hands ``mlflow server``."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    values = {e["name"]: e.get("value") for e in container["env"]}
    assert {"MLFLOW_S3_ENDPOINT_URL", *CREDENTIALS} <= set(values)
    destination = values["MLFLOW_ARTIFACTS_DESTINATION"]
    assert isinstance(destination, str)
    assert destination.startswith("s3://")
    return destination


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Moto's S3 server on a loopback port, with the manifest's bucket created."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=2.0)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "moto's S3 server did not start"
                time.sleep(0.2)
        bucket = _manifest_destination().removeprefix("s3://").split("/")[0]
        _s3(url).create_bucket(Bucket=bucket)
        yield url
    finally:
        _stop(process)


def _s3(endpoint: str) -> Any:
    """A boto3 S3 client for the stand-in bucket server."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def tracking_url(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with proxied artifacts in the bucket, configured by environment only."""
    root = tmp_path_factory.mktemp("mlflow-s3")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **CREDENTIALS,
        "MLFLOW_ARTIFACTS_DESTINATION": _manifest_destination(),
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    log = root / "mlflow.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [mlflow_cli, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_healthy(url, process, log, 120.0)
        yield url
    finally:
        _stop(process)


def test_a_logged_model_lands_in_the_bucket_and_loads_back(
    tracking_url: str, s3_endpoint: str
) -> None:
    """Logged through the server, stored under the manifest's prefix, scored identically."""
    frame = generate(1500, 5)
    model = fit(frame, ModelConfig(max_iter=20))
    rows = frame.drop(columns=[c for c in frame.columns if c not in model.feature_names_in_])
    with mlflow_store(tracking_url):
        mlflow.set_experiment("s3-artifacts")
        with mlflow.start_run():
            uri = log_model(model, rows.head(5))
        loaded = load_model(uri)
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    bucket, _, prefix = _manifest_destination().removeprefix("s3://").partition("/")
    listed = _s3(s3_endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert any(k.endswith("/MLmodel") for k in keys), keys
    assert any(k.endswith(".skops") for k in keys), keys
