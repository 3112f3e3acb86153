"""The two servers ``mlplat bench serve`` compares, as uvicorn app factories.

Both serve the same skops model file (``MLPLAT_BENCH_MODEL_PATH``) with the same request schema
and response shape, so the comparison isolates how the request is turned into a model call:

* :func:`naive_app` — the reference everyone writes first: a ``def`` endpoint (run in
  FastAPI's thread pool) that builds a one-row ``DataFrame`` per request and calls
  ``predict_proba``. No metrics, no inference log.
* :func:`service_app` — the real service (:func:`serving.app.create_app`) with its settings
  from the environment, so the benchmark can switch metrics and the inference log off.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI

from pipeline.threads import limit_threads
from serving import FileModelSource, create_app
from serving.schemas import PredictRequest, PredictResponse

__all__ = ["MODEL_PATH_ENV", "naive_app", "service_app"]

MODEL_PATH_ENV = "MLPLAT_BENCH_MODEL_PATH"
"""Environment variable naming the skops model file both apps serve."""


def _model_path() -> Path:
    value = os.environ.get(MODEL_PATH_ENV)
    if not value:
        raise RuntimeError(f"{MODEL_PATH_ENV} must name the skops model file to serve")
    return Path(value)


def naive_app() -> FastAPI:
    """One request, one DataFrame, one ``predict_proba``."""
    source = FileModelSource(_model_path())
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_threads(1)
        state["model"] = source.load(source.version)
        yield

    app = FastAPI(title="naive reference endpoint", lifespan=lifespan)

    @app.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest) -> dict[str, Any]:
        frame = pd.DataFrame([r.model_dump(exclude={"customer_id"}) for r in body.records])
        probabilities = state["model"].predict_proba(frame)[:, 1]
        return {
            "request_id": "naive",
            "predictions": [
                {
                    "prediction": int(p >= 0.5),
                    "probability": float(p),
                    "model_version": source.version,
                    "variant": "champion",
                }
                for p in probabilities
            ],
        }

    return app


def service_app() -> FastAPI:
    """The real service, serving the benchmark's model file as its champion."""
    return create_app(model_source=FileModelSource(_model_path()))
