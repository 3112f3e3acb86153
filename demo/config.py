"""The closed-loop demo's knobs: one typed config, printed at the start of every run.

The demo compresses *time*, not the rules. Windows are seconds instead of minutes, traffic is a
few hundred requests per second instead of a day's worth, and the training sets are small; the
judge's error budgets, floors and margins and the drift checks' calibration are the platform's
defaults. Two policy knobs differ from the defaults, each on purpose (see the field docs):
``prediction_shift_action`` and ``retrain_drift_threshold``.

Every field can be overridden from a YAML file (``mlplat demo --config FILE``); a value that
breaks a rule is refused with the field's name and the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ci.deploy import MAX_CANARY_WEIGHT
from monitoring import DriftConfig, JudgeConfig, MonitorSettings
from pipeline import PipelineConfig, load_config

__all__ = ["DemoConfig", "DemoConfigError", "load_demo_config"]


class DemoConfigError(ValueError):
    """A demo setting breaks a rule; the message names the field and the rule."""


class DemoConfig(BaseModel):
    """Every knob of ``mlplat demo``.

    Attributes:
        training_rows: Rows generated per pipeline run (the pipeline default is 20,000; fewer
            rows train in a second, and the gates still have a 2,000-row holdout).
        champion_seed: Data snapshot of the first champion.
        skew_seed: Data snapshot of the defective candidate (scenario 1).
        good_seed: Data snapshot of the good candidate (scenario 2).
        traffic_rate: Requests per second sent by ``mlplat traffic`` (open loop).
        traffic_concurrency: Most requests in flight at once.
        traffic_seed: Seed of the first traffic run's customers; later runs add one.
        label_delay_s: Seconds before a prediction's true outcome arrives (``POST /feedback``).
        label_fraction: Share of predictions whose outcome arrives at all.
        canary_weight: Share of traffic a canary takes.
        judge_window_s: Length of one judge window (production: 60 s).
        controller_interval_s: Time between two controller cycles (production: 15 s).
        min_canary_seconds: A canary is promoted only after serving this long (production: 900).
        min_canary_requests: ...and after answering this many requests (production: 1,000).
        prediction_shift_action: What the judge does when the canary scores the same traffic
            very differently with no proven harm. The platform default is ``pause`` (a person
            decides: the change may be intended). The demo ships *retrains* of the same model on
            new snapshots of the same world, whose intended behaviour change is nil (a clean
            retrain moves the score distribution by a PSI near 0.01), so for them a shift beyond
            the guardrail is a defect by declaration and ``rollback`` is the right policy. With
            ``pause`` scenario 1 ends paused, not rolled back: its harm (about +0.05 nats of log
            loss) needs over ten thousand labels per variant before the quality bound proves it.
        error_rate_margin_min: The judge's error-rate margin against a champion with no
            errors (``JudgeConfig.error_rate_margin_min``; platform default 0.2 point). The
            demo's service makes no errors, and proving a canary adds fewer than 0.2 point takes
            about 4,000 canary requests: more than a 90-second scenario sends on a loaded
            two-core machine. The demo keeps the old half-point margin and says so.
        drift_interval_s: Time between two drift checks (production: 300 s).
        drift_window_s: The drift job checks the inference log of the last this-many seconds.
        drift_max_rows: At most this many of the window's rows are checked.
        retrain_drift_threshold: Share of drifted champion features that fires the retrain
            trigger. The platform default, 0.3, waits for *broad* drift (4 of the 13 features);
            the drift policy (``monitoring/drift/policy.py::recommend``) asks for a retrain on any
            input drift of the champion, and the demo's covariate shift moves one feature, so
            the demo fires on one drifted feature (1/13 is 0.077).
        drift_magnitude: Size of scenario 3's covariate shift, in standard deviations of
            ``credit_score`` (``None``: the scenario's default, 1).
        drift_hold_s: After the drift is flagged, how long scenario 3 keeps watching to show
            that nothing moved the champion.
        serving_reconcile_s: How often the service polls the registry (production: 5 s).
        scenario_timeout_s: Longest wait for any one scenario's verdict.
        startup_timeout_s: Longest wait for the service to load its first champion.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    training_rows: int = Field(default=8_000, ge=2_000, le=200_000)
    champion_seed: int = Field(default=42, ge=0)
    skew_seed: int = Field(default=7, ge=0)
    good_seed: int = Field(default=8, ge=0)

    traffic_rate: float = Field(default=150.0, ge=10.0, le=2_000.0)
    traffic_concurrency: int = Field(default=16, ge=1, le=256)
    traffic_seed: int = Field(default=5_000, ge=0)
    label_delay_s: float = Field(default=1.0, ge=0.0, le=30.0)
    label_fraction: float = Field(default=0.5, gt=0.0, le=1.0)

    canary_weight: float = Field(default=0.5, gt=0.0, le=1.0)
    judge_window_s: float = Field(default=4.0, ge=1.0, le=300.0)
    controller_interval_s: float = Field(default=1.0, gt=0.0, le=30.0)
    min_canary_seconds: float = Field(default=10.0, ge=0.0)
    min_canary_requests: int = Field(default=1_000, ge=0)
    prediction_shift_action: Literal["pause", "rollback"] = "rollback"
    error_rate_margin_min: float = Field(default=0.005, gt=0.0, lt=0.05)

    drift_interval_s: float = Field(default=2.0, gt=0.0, le=300.0)
    drift_window_s: float = Field(default=6.0, gt=0.0, le=3_600.0)
    drift_max_rows: int = Field(default=1_000, ge=200)
    retrain_drift_threshold: float = Field(default=0.05, gt=0.0, le=1.0)
    drift_magnitude: float | None = Field(default=None, gt=0.0, le=5.0)
    drift_hold_s: float = Field(default=4.0, ge=0.0, le=120.0)

    serving_reconcile_s: float = Field(default=0.5, gt=0.0, le=30.0)
    scenario_timeout_s: float = Field(default=90.0, ge=10.0, le=1_800.0)
    startup_timeout_s: float = Field(default=180.0, ge=10.0, le=1_800.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # The deploy guardrail's limit, read where it lives.
        if self.canary_weight > MAX_CANARY_WEIGHT:
            raise ValueError(
                f"canary_weight must be at most {MAX_CANARY_WEIGHT} (ci/deploy.py::"
                f"MAX_CANARY_WEIGHT), got {self.canary_weight}: a canary that takes most of the "
                "traffic is a deploy"
            )
        seeds = {"champion_seed": self.champion_seed, "skew_seed": self.skew_seed,
                 "good_seed": self.good_seed}  # fmt: skip
        if len(set(seeds.values())) < len(seeds):
            raise ValueError(
                f"champion_seed, skew_seed and good_seed must differ (each candidate is trained "
                f"on a new data snapshot), got {seeds}"
            )
        reachable = self.traffic_rate * self.canary_weight * self.scenario_timeout_s
        if reachable <= self.min_canary_requests:
            raise ValueError(
                f"min_canary_requests ({self.min_canary_requests}) cannot be reached: "
                f"traffic_rate x canary_weight x scenario_timeout_s is only {reachable:.0f}"
            )
        if self.min_canary_seconds >= self.scenario_timeout_s:
            raise ValueError(
                f"min_canary_seconds ({self.min_canary_seconds:g}) must be shorter than "
                f"scenario_timeout_s ({self.scenario_timeout_s:g}), or no canary can be promoted"
            )
        if self.drift_window_s < self.drift_interval_s:
            raise ValueError(
                f"drift_window_s ({self.drift_window_s:g}) must be at least drift_interval_s "
                f"({self.drift_interval_s:g}), or traffic between two checks goes unchecked"
            )
        return self

    def pipeline_config(self) -> PipelineConfig:
        """The pipeline's defaults (``pipeline/conf/parameters.yml``) with fewer rows."""
        raw = load_config().model_dump()
        raw["data"]["n_rows"] = self.training_rows
        return PipelineConfig.model_validate(raw)

    def judge_config(self) -> JudgeConfig:
        """The judge's defaults, with the demo's ``prediction_shift_action`` and error margin."""
        return JudgeConfig(
            prediction_shift_action=self.prediction_shift_action,
            error_rate_margin_min=self.error_rate_margin_min,
        )

    def monitor_settings(
        self, *, home: Path, serving_url: str, inference_log_url: str, report_dir: Path
    ) -> MonitorSettings:
        """The controller's settings: the service's own ``/metrics``, no Prometheus, no webhook.

        Every field that matters is given, so ``MLPLAT_MONITOR_*`` variables of the caller's
        shell cannot change the demo.
        """
        return MonitorSettings(
            environment="dev",
            home=home,
            interval_seconds=self.controller_interval_s,
            prometheus_url=None,
            serving_metrics_urls=(f"{serving_url}/metrics",),
            http_timeout_seconds=5.0,
            inference_log_url=inference_log_url,
            webhook_token=None,
            judge=self.judge_config(),
            judge_config_file=None,
            judge_window_seconds=self.judge_window_s,
            min_canary_seconds=self.min_canary_seconds,
            min_canary_requests=self.min_canary_requests,
            drift=DriftConfig(),
            drift_interval_seconds=self.drift_interval_s,
            drift_window_seconds=self.drift_window_s,
            drift_max_rows=self.drift_max_rows,
            drift_report_dir=report_dir,
            state_dir=home / "monitor",
            retrain_drift_threshold=self.retrain_drift_threshold,
            retrain_cooldown_hours=6.0,
            retrain_command=None,
        )

    def knobs(self) -> list[tuple[str, str, str]]:
        """The settings a reader should see, as ``(knob, demo value, production value)`` rows."""
        shift = self.prediction_shift_action
        return [
            ("training rows per pipeline run", f"{self.training_rows:,}", "20,000"),
            ("traffic offered", f"{self.traffic_rate:g} req/s, labels after "
                                f"{self.label_delay_s:g} s for {self.label_fraction:.0%}",
             "real users, labels after months"),
            ("canary weight", f"{self.canary_weight:.0%}", "up to 50%"),
            ("judge window", f"{self.judge_window_s:g} s", "60 s"),
            ("controller cycle", f"{self.controller_interval_s:g} s", "15 s"),
            ("promotion minimums", f"{self.min_canary_seconds:g} s and "
                                   f"{self.min_canary_requests:,} requests", "900 s and 1,000"),
            ("judge floors, margins, error budgets", "platform defaults", "platform defaults"),
            ("prediction shift without proven harm", shift, "pause"),
            ("error-rate margin against an error-free champion",
             f"{self.error_rate_margin_min:.2%}", "0.20%"),
            ("drift check", f"every {self.drift_interval_s:g} s on the last "
                            f"{self.drift_window_s:g} s", "every 300 s on the last hour"),
            ("retrain when this share of features drifts",
             f"{self.retrain_drift_threshold:g}", "0.3"),
            ("service polls the registry", f"every {self.serving_reconcile_s:g} s", "every 5 s"),
        ]  # fmt: skip


def load_demo_config(path: Path | None = None) -> DemoConfig:
    """The demo's config: defaults, with the fields of a YAML file over them.

    Raises:
        DemoConfigError: The file is unreadable or a value breaks a rule (each field named).
    """
    data: object = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DemoConfigError(f"{path}: cannot read the demo configuration ({exc})") from exc
        if not isinstance(data, dict):
            raise DemoConfigError(f"{path}: the top level must be a mapping of DemoConfig fields")
    try:
        return DemoConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise DemoConfigError(f"invalid demo configuration: {problems}") from None
