"""A retrain trigger that starts the retraining run as a Kubernetes Job.

In compose the drift-triggered retrain is a command the controller starts detached beside
itself (:class:`~monitoring.controller.retrain.DriftRetrainTrigger`). On Kubernetes the
controller is a one-replica decision loop with a modest memory limit, and a training run belongs
in its own pod:
:class:`KubernetesJobTrigger` keeps the same rule and the same durable record (it *wraps* a
``DriftRetrainTrigger`` that has no command: threshold, cool-down and the decisions file are
that class's), and when the rule fires it creates a Job through the API server::

    POST /apis/batch/v1/namespaces/{namespace}/jobs

The Job is a template (a YAML manifest, mounted from a ConfigMap) given a name of its own —
``<template name>-v<version>-<UTC time of the decision>``, so one decision is one Job and a
retry of it meets ``409 AlreadyExists`` instead of a second run — and annotations carrying the
drift share, the evidence path and the drifted features. ``{drift_share}`` and ``{evidence}``
in the containers' ``command`` and ``args`` are replaced, as in ``retrain_command``.

Authentication is the pod's service account (``monitoring/controller/kubernetes.py``).

An API error (403, 409, 5xx, a timeout, an unreachable server) never raises: the decision says
that no retraining started and why, the recorded decision carries the answer, and the
cool-down is *not* started, so the next drift check asks again.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from interfaces.files import write_json_atomically
from monitoring.controller.kubernetes import JobClient
from monitoring.controller.retrain import DriftRetrainTrigger, RetrainDecision, RetrainRequest
from monitoring.settings import MonitorSettingsError

__all__ = [
    "ANNOTATION_PREFIX",
    "KubernetesJobTrigger",
    "build_job",
    "job_name",
    "load_job_template",
]

ANNOTATION_PREFIX: Final = "mlplat/"
"""Prefix of the labels and annotations the trigger puts on the Jobs it creates."""

_MAX_NAME: Final = 63
"""A Job's name ends up in its pods' ``job-name`` label, which allows 63 characters."""

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- the Job -----------------------------------------------------------------------------------


def load_job_template(path: Path) -> dict[str, Any]:
    """Read and check the Job template, so a bad one stops the controller at start.

    Raises:
        MonitorSettingsError: Naming ``retrain_job_template`` and what is wrong.
    """
    where = f"retrain_job_template {str(path)!r}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MonitorSettingsError(f"{where}: {exc}") from exc
    if not isinstance(data, dict):
        raise MonitorSettingsError(f"{where}: must hold one Job manifest (a mapping)")
    if data.get("apiVersion") != "batch/v1" or data.get("kind") != "Job":
        raise MonitorSettingsError(f"{where}: must be apiVersion batch/v1, kind Job")
    metadata = data.get("metadata") or {}
    base = str(metadata.get("generateName") or metadata.get("name") or "").rstrip("-")
    if not _DNS_LABEL.match(base) or len(base) > 30:
        raise MonitorSettingsError(
            f"{where}: metadata.name (or generateName) must be a DNS label of at most 30 "
            f"characters, the prefix of the Jobs' names; got {base!r}"
        )
    pod = ((data.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise MonitorSettingsError(f"{where}: spec.template.spec.containers must list a container")
    return data


def job_name(template: Mapping[str, Any], request: RetrainRequest) -> str:
    """The Job's name: the template's name, the champion's version and the decision's time.

    One decision gives one name, so creating it twice is refused (409) rather than run twice.
    """
    metadata = template.get("metadata") or {}
    base = str(metadata.get("generateName") or metadata.get("name")).rstrip("-")
    suffix = f"-v{request.model_version}-{request.at:%Y%m%d-%H%M%S}"
    return f"{base[: _MAX_NAME - len(suffix)]}{suffix}".lower()


def _substitute(value: object, values: Mapping[str, str]) -> object:
    if not isinstance(value, str):
        return value
    # str.replace, not str.format: a shell script's ${VAR} must pass through untouched.
    for key, text in values.items():
        value = value.replace("{" + key + "}", text)
    return value


def build_job(template: Mapping[str, Any], request: RetrainRequest, name: str) -> dict[str, Any]:
    """The Job to create: the template, named, annotated with the drift that asked for it.

    Args:
        template: A manifest accepted by :func:`load_job_template` (not modified).
        request: The drift that fired the trigger.
        name: The Job's name (:func:`job_name`).
    """
    job = copy.deepcopy(dict(template))
    metadata = dict(job.get("metadata") or {})
    metadata.pop("generateName", None)
    metadata.pop("namespace", None)  # the URL says where it goes
    metadata["name"] = name
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        f"{ANNOTATION_PREFIX}trigger": "drift",
        f"{ANNOTATION_PREFIX}model-version": str(request.model_version),
    }
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        f"{ANNOTATION_PREFIX}drift-share": f"{request.drift_share:.4f}",
        f"{ANNOTATION_PREFIX}evidence": request.evidence or "",
        f"{ANNOTATION_PREFIX}drifted-features": ",".join(request.drifted_features),
        f"{ANNOTATION_PREFIX}severity": request.severity,
        f"{ANNOTATION_PREFIX}decided-at": request.at.isoformat(),
    }
    job["metadata"] = metadata
    values = {"drift_share": f"{request.drift_share:.4f}", "evidence": request.evidence or ""}
    for container in job["spec"]["template"]["spec"]["containers"]:
        for key in ("command", "args"):
            if isinstance(container.get(key), list):
                container[key] = [_substitute(part, values) for part in container[key]]
    return job


# --- the trigger -------------------------------------------------------------------------------


class KubernetesJobTrigger:
    """The drift retrain trigger whose run is a Kubernetes Job (a :class:`RetrainTrigger`).

    Args:
        decider: Applies the rule and records the decision; it must have no ``command``
            (the Job replaces it).
        jobs: Creates the Job.
        template: The Job manifest (:func:`load_job_template`).

    Raises:
        ValueError: If ``decider`` would also start a command.
    """

    def __init__(
        self, decider: DriftRetrainTrigger, jobs: JobClient, template: Mapping[str, Any]
    ) -> None:
        if decider.command is not None:
            raise ValueError("KubernetesJobTrigger: the decider must not start a command too")
        self.decider = decider
        self.jobs = jobs
        self.template = template

    def __call__(self, request: RetrainRequest) -> RetrainDecision:
        """Apply the rule; when it fires, create the Job and record what the server said."""
        previous = _last_fired_at(self.decider.state_file)
        decision = self.decider(request)
        if not decision.fire:
            return decision
        name = job_name(self.template, request)
        outcome = self.jobs.create(build_job(self.template, request, name))
        record: dict[str, object] = {
            **decision.details,
            "fire": outcome.created,
            "job": outcome.to_dict(),
        }
        if outcome.created:
            self._amend(record, last_fired_at=request.at.isoformat())
            return RetrainDecision(True, f"{decision.reason}; {outcome.reason}", record)
        # Nothing runs, so the cool-down must not hold back the next drift check's retry.
        self._amend(record, last_fired_at=previous)
        reason = (
            f"{decision.reason}, but no retraining started: {outcome.reason}; the cool-down "
            "was not started, the next drift check asks again"
        )
        return RetrainDecision(False, reason, record)

    def _amend(self, record: Mapping[str, object], last_fired_at: str | None) -> None:
        """Replace the decider's last recorded decision with ``record`` (temp file, rename)."""
        path = self.decider.state_file
        data = json.loads(path.read_text(encoding="utf-8"))
        decisions = list(data.get("decisions") or [])
        data["decisions"] = [*decisions[:-1], dict(record)]
        data["last_fired_at"] = last_fired_at
        write_json_atomically(path, data)


def _last_fired_at(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    last = data.get("last_fired_at") if isinstance(data, dict) else None
    return last if isinstance(last, str) else None
