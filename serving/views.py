"""Response views of the deployment snapshot, shared by ``/ready``, ``/model`` and admin."""

from __future__ import annotations

from serving.inference_path import path_of
from serving.schemas import DeploymentView, LoadFailureView, ModelView, RefusalView
from serving.snapshot import Deployment, LoadedModel


def _model_view(model: LoadedModel | None) -> ModelView | None:
    if model is None:
        return None
    path, reason = path_of(model.predictor)
    return ModelView(
        version=model.version,
        since=model.since,
        loaded_at=model.loaded_at,
        inference_path=path,
        inference_path_reason=reason,
    )


def deployment_view(deployment: Deployment) -> DeploymentView:
    """What a snapshot serves."""
    return DeploymentView(
        champion=_model_view(deployment.champion),
        canary=_model_view(deployment.canary),
        canary_weight=deployment.canary_weight,
        refusals=refusal_views(deployment),
        from_cache=deployment.from_cache,
    )


def refusal_views(deployment: Deployment) -> list[RefusalView]:
    """The snapshot's refusals of the registry's choices."""
    return [
        RefusalView(
            variant=r.variant, version=r.version, reason=r.reason, detail=r.detail, since=r.since
        )
        for r in deployment.refusals
    ]


def failure_views(deployment: Deployment) -> list[LoadFailureView]:
    """The snapshot's load failures."""
    return [
        LoadFailureView(variant=f.variant, version=f.version, error=f.error, since=f.since)
        for f in deployment.failures
    ]
