"""Ship a defective canary to the running stack, then watch the controller roll it back.

``make bad-canary`` runs this in the stack (``docker compose run --rm bad-canary``); outside
Docker, point it at a running service and controller with ``--serving-url`` and
``--controller-url``. It only types the ``mlplat`` commands a person would, printing each one:

1. ``mlplat pipeline run --scenario concept-drift``: a candidate trained on a snapshot whose
   labels come from a different risk regime (debt load matters, the credit score much less).
   It passes every offline gate, honestly: its holdout comes from the same snapshot, and on
   that snapshot it *is* the better model. That is the defect canaries exist for: an offline
   evaluation that does not represent production.
2. ``mlplat deploy canary --weight 0.5``: it takes half of the traffic. Only gate-passed
   versions may (``ci/deploy.py::start_canary``), and this one did.
3. ``mlplat traffic`` (in the background): extra requests whose true outcomes arrive after a few
   seconds. Live traffic is drawn from the real world, where this candidate is worse: its log
   loss on delayed labels is about 0.05 nats higher than the champion's. The judge's
   anytime-valid bound needs several thousand labelled canary predictions to call that, so the
   extra traffic brings the verdict from tens of minutes down to about five.
4. Polls the controller's ``GET /status`` and prints each judge window until the canary is
   rolled back (or, if the demo fails, paused or promoted), then ``mlplat pipeline history``.

Exit status: 0 when the canary was rolled back, 1 otherwise (with the reason).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

SCENARIO = "concept-drift"
FINISHED_STATES = ("rolled_back", "promoted", "paused")
SEED_OFFSET = 1_000_000_000
"""Added to the traffic seed: request ids (``traffic-<seed>-<n>``) never collide with those of
the stack's generator, which seeds each run with the current Unix time."""


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def say(text: str) -> None:
    """Print a line at once (the output is a container log, read while it happens)."""
    print(text, flush=True)


def mlplat(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one ``mlplat`` command, printed first as a person would type it."""
    say(f"$ mlplat {shlex.join(args)}")
    return subprocess.run(
        ["mlplat", *args], check=False, text=True, stdout=subprocess.PIPE if capture else None
    )


def last_json_object(text: str) -> dict[str, Any]:
    """The last JSON object printed on its own lines in ``text`` (empty if there is none).

    ``--json`` puts the summary on stdout, but MLflow prints its "View run at" lines there too.
    """
    decoder = json.JSONDecoder()
    starts = [i for i in range(len(text)) if text[i] == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def train_candidate(seed: int, scenario: str) -> int:
    """Run the pipeline on a defective snapshot; return the registered version."""
    done = mlplat(
        "pipeline", "run", "--seed", str(seed), "--scenario", scenario, "--json",
        "--reason", f"make bad-canary: a candidate trained on a {scenario} snapshot",
        capture=True,
    )  # fmt: skip
    summary = last_json_object(done.stdout or "")
    if done.returncode == 3:
        reasons = "; ".join(summary.get("reasons") or []) or "see the output above"
        raise DemoError(f"a gate stopped the candidate, so there is nothing to ship: {reasons}")
    version = summary.get("model_version")
    if done.returncode != 0 or not isinstance(version, int):
        raise DemoError(f"the pipeline run failed (exit {done.returncode}); see the output above")
    say(f"  registered version {version} as {summary.get('alias')}: every gate passed")
    return version


def start_traffic(
    url: str, rate: float, seconds: float, label_delay: float
) -> subprocess.Popen[str]:
    """Start extra labelled traffic in the background."""
    args = [
        "traffic", "--url", url, "--rate", f"{rate:g}", "--duration", f"{seconds:g}",
        "--label-delay", f"{label_delay:g}", "--seed", str(SEED_OFFSET + int(time.time())),
    ]  # fmt: skip
    say(f"$ mlplat {shlex.join(args)} &")
    return subprocess.Popen(["mlplat", *args], text=True, stdout=subprocess.DEVNULL)


def controller_status(url: str) -> dict[str, Any] | None:
    """The controller's last cycle report, or ``None`` while it has none or is unreachable."""
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=5) as response:
            report: dict[str, Any] = json.load(response)
            return report
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError, OSError):
        return None


def describe(canary: dict[str, Any]) -> str:
    """One line for a judge window: the verdict, why, and the quality signal's numbers."""
    line = f"window {canary.get('window')}: {canary.get('verdict') or 'waiting'}: "
    line += str(canary.get("reason"))[:240]
    signals = (canary.get("judgement") or {}).get("signals") or []
    quality = next((s for s in signals if s.get("name") == "quality"), None)
    if quality and None not in (quality.get("estimate"), quality.get("ci_low")):
        line += (
            f" | quality (log loss, canary - champion): {quality['estimate']:+.4f}, "
            f"bounds [{quality['ci_low']:+.4f}, {quality['ci_high']:+.4f}] "
            f"on {quality.get('n_canary')} labels"
        )
    return line


def watch(controller_url: str, version: int, timeout_s: float, poll_s: float) -> str:
    """Print each judge window of canary ``version`` until it finishes; return its end state."""
    started = time.monotonic()
    seen = False
    last = ""
    while (elapsed := time.monotonic() - started) < timeout_s:
        report = controller_status(controller_url)
        canary = (report or {}).get("canary") or {}
        deployment = (report or {}).get("deployment") or {}
        if canary.get("version") == version:
            seen = True
            if canary.get("state") in FINISHED_STATES:
                say(f"  [{elapsed:4.0f} s] {describe(canary)}")
                return str(canary["state"])
            # Between two judgements a cycle only says "already judged": not worth a line.
            judged = canary.get("verdict") is not None or not canary.get("window")
            line = describe(canary)
            for hold in (report or {}).get("held_because") or []:
                line += f" [holding: {hold}]"
            if judged and line != last:
                say(f"  [{elapsed:4.0f} s] {line}")
                last = line
        elif (
            seen
            and deployment
            and (deployment.get("challenger") != version or not deployment.get("canary_weight"))
        ):
            # Finished between two polls: the next cycle no longer has a canary to report.
            return "finished"
        time.sleep(poll_s)
    return "timed_out"


def run(args: argparse.Namespace) -> int:
    """The four steps; returns the exit status."""
    say(f"== 1/4 train a candidate on a {args.scenario} snapshot (it passes the offline gates)")
    version = train_candidate(args.seed, args.scenario)
    say(f"== 2/4 ship version {version} as a canary at {args.weight:.0%} of the traffic")
    deployed = mlplat(
        "deploy", "canary", "--version", str(version), "--weight", f"{args.weight:g}",
        "--reason", f"make bad-canary: watch the controller judge version {version}",
    )  # fmt: skip
    if deployed.returncode != 0:
        raise DemoError(f"could not start the canary (exit {deployed.returncode})")
    if not args.wait:
        # Extra traffic would die with this process: the stack's generator alone feeds the judge.
        say("== 3/4 and 4/4 skipped (--no-wait): watch Grafana, or the controller's /status")
        return 0
    traffic = None
    if args.traffic_seconds > 0:
        say("== 3/4 extra traffic with labels after a few seconds, so the judge gets evidence")
        traffic = start_traffic(
            args.serving_url, args.traffic_rate, args.traffic_seconds, args.label_delay
        )
    else:
        say("== 3/4 no extra traffic (--traffic-seconds 0): the stack's generator alone")
    try:
        say(f"== 4/4 the controller judges the canary once a window ({args.controller_url})")
        outcome = watch(args.controller_url, version, args.timeout, args.poll)
    finally:
        if traffic is not None and traffic.poll() is None:
            traffic.terminate()
            traffic.wait(timeout=30)
    mlplat("pipeline", "history", "--limit", "5")
    if outcome == "rolled_back":
        say(
            f"canary v{version} was rolled back: the MLflow UI shows the version tagged "
            "mlplat.status=rejected, Grafana's canary panels show the verdict"
        )
        return 0
    if outcome == "finished":
        say(f"canary v{version} no longer takes traffic: the history above says what happened")
        return 0
    if outcome == "timed_out":
        raise DemoError(
            f"no verdict within {args.timeout:g} s; the canary may still be live: "
            "`mlplat pipeline status`, and the controller's /status say why"
        )
    raise DemoError(f"the canary was {outcome}, not rolled back: the history above says why")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serving-url", default="http://127.0.0.1:8000")
    parser.add_argument("--controller-url", default="http://127.0.0.1:9200")
    parser.add_argument("--seed", type=int, default=99, help="data snapshot of the candidate")
    parser.add_argument("--scenario", default=SCENARIO, help="the defect of the snapshot")
    parser.add_argument("--weight", type=float, default=0.5, help="canary share of traffic")
    parser.add_argument("--traffic-rate", type=float, default=40.0, help="extra requests/s")
    parser.add_argument("--traffic-seconds", type=float, default=900.0, help="0: none")
    parser.add_argument("--label-delay", type=float, default=5.0, help="seconds until labels")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait")
    parser.add_argument("--poll", type=float, default=3.0, help="seconds between polls")
    parser.add_argument(
        "--no-wait", dest="wait", action="store_false", help="ship the canary and exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; a failed step prints its reason and exits 1, never a traceback."""
    args = parse_args(argv)
    try:
        return run(args)
    except DemoError as exc:
        say(f"bad-canary: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
