"""How fast does the monitor of the guarantee notice a drift, and how often does it cry wolf before one?

A simulated stream of labelled, delivered (hedged) requests under the shipped artifact
(``gate/data/gemma-3-270m.calibration.json``: hedge_level 0.3, so at most 0.70 errors among answered or hedged
requests, with confidence 0.9). Nothing here calls a model: each label's correctness is drawn at random.

- easy phase: error rate 0.333, what the artifact reports on its held-out test part among answered or hedged
  requests (2 errors among 6: a small sample, taken as given);
- drift phase: error rate 0.921, the model's error rate on all test questions (``error_ungated``): what
  delivered answers look like once the gate's scores no longer separate right from wrong; and a milder 0.80;
- a boundary run whose error rate is exactly the target (0.70) throughout, to measure the false alarms of
  checking after every label (each check alone errs with probability at most 0.1).

The monitor is checked after every label, as a cron job that runs often would (``gate monitor --window W``: the
same :class:`gate.monitor.GroupReport` rule). ``--check-cli`` also writes one seed's audit and feedback logs in
the real formats and runs ``gate monitor`` on them after the easy phase and after the drift.

    python -m benchmarks.monitor_drift --seeds 200 --out benchmarks/results/monitor.md
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import machine_description, package_versions
from gate.audit.feedback import feedback_record
from gate.audit.log import AuditLog, Outcome, audit_record
from gate.monitor import Targets, error_bounds, status_of

ARTIFACT = Path(__file__).resolve().parent.parent / "gate" / "data" / "gemma-3-270m.calibration.json"
EASY_ERROR = 2 / 6  # the artifact's test part: error_answered_or_hedged
DRIFT_ERROR = 619 / 672  # the artifact's test part: error_ungated


@dataclass(frozen=True)
class Scenario:
    """One simulated stream: ``easy_n`` labels at ``easy_error``, then ``drift_n`` at ``drift_error``."""

    name: str
    easy_error: float
    drift_error: float
    window: int | None
    easy_n: int = 1000
    drift_n: int = 1000
    confidence: float | None = None  # None: the artifact's
    every: int = 1  # labels between two checks (1: after every label)


def draw_errors(seed: int, *, easy_n: int, drift_n: int, easy_error: float, drift_error: float) -> np.ndarray:
    """Whether each labelled answer was wrong: the easy phase, then the drift phase."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(easy_n) < easy_error, rng.random(drift_n) < drift_error])


def alarms_at(errors: np.ndarray, *, target: float, confidence: float, window: int | None, start: int = 0,
              stop: int | None = None, every: int = 1) -> int | None:  # fmt: skip
    """The first label count in ``(start, stop]`` at which the monitor, checked after every ``every`` labels (counted
    from the first), is in alarm."""
    cumulative = np.concatenate([[0], np.cumsum(errors)])
    first_check = start + every - start % every
    for count in range(first_check, (stop or len(errors)) + 1, every):
        first = 0 if window is None else max(0, count - window)
        wrong, labelled = int(cumulative[count] - cumulative[first]), count - first
        if wrong / labelled <= target:  # the lower bound is below the rate: no alarm possible, skip the quantile
            continue
        lower, upper = error_bounds(wrong, labelled, confidence=confidence)
        if status_of(lower, upper, target) == "alarm":
            return count
    return None


def write_logs(
    audit: Path, feedback: Path, errors: Sequence[bool], *, calibration: str, tenant: str = "default",
    abstained_every: int = 0, first: int = 0,
) -> list[str]:  # fmt: skip
    """Append one hedged request and its label per entry of ``errors`` to real audit and feedback logs (plus an
    abstained, labelled request every ``abstained_every`` ones); the delivered requests' ids (numbered from
    ``first``, so that several calls on one log keep them apart)."""
    audit_log = AuditLog(audit, max_bytes=50_000_000, backups=5, question="hash")
    feedback_log = AuditLog(feedback, max_bytes=50_000_000, backups=5, question="hash")
    ids = []
    for index, wrong in enumerate(errors):
        decisions = ["hedge"] + (["abstain"] if abstained_every and index % abstained_every == 0 else [])
        for decision in decisions:
            request_id = f"{tenant}-{first + index}-{decision}"
            view = {"decision": decision, "probability": 0.62, "stage": "full", "calibration": calibration}
            outcome = Outcome(
                request_id=request_id, route="chat", model="local/gemma-3-270m", mode="enforce",
                question=f"question {index}", total_s=0.5, gate=view,
            )  # fmt: skip
            record = audit_record(outcome, question="hash") | {"tenant": tenant}
            audit_log.append(audit_log.masked(record).encode())
            label = feedback_record(request_id, correct=not wrong, tenant=tenant, note=None)
            feedback_log.append(feedback_log.masked(label).encode())
            if decision == "hedge":
                ids.append(request_id)
    return ids


def run_scenario(scenario: Scenario, seeds: int, *, target: float, confidence: float) -> dict[str, object]:
    """False alarms in the easy phase and the labels the drift phase takes to raise the alarm, over ``seeds``."""
    false_alarms, delays, missed = 0, [], 0
    for seed in range(seeds):
        errors = draw_errors(
            seed, easy_n=scenario.easy_n, drift_n=scenario.drift_n, easy_error=scenario.easy_error,
            drift_error=scenario.drift_error,
        )  # fmt: skip
        check = {
            "target": target, "confidence": scenario.confidence or confidence, "window": scenario.window,
            "every": scenario.every,
        }  # fmt: skip
        if alarms_at(errors, stop=scenario.easy_n, **check) is not None:
            false_alarms += 1
        if scenario.drift_n:
            fired = alarms_at(errors, start=scenario.easy_n, **check)
            if fired is None:
                missed += 1
            else:
                delays.append(fired - scenario.easy_n)
    return {"false_alarms": false_alarms, "delays": delays, "missed": missed, "seeds": seeds}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def check_cli(calibration: str, *, window: int) -> list[str]:
    """Seed 0 of the main scenario through real log files and ``gate monitor``: the exit codes and statuses."""
    from typer.testing import CliRunner

    from gate.cli.main import app

    errors = draw_errors(0, easy_n=1000, drift_n=1000, easy_error=EASY_ERROR, drift_error=DRIFT_ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        audit, feedback = Path(directory) / "audit.jsonl", Path(directory) / "audit.feedback.jsonl"
        phases = (("after the easy phase (1000 labels)", 0), ("after the drift phase (1000 more)", 1000))
        for phase, first in phases:
            write_logs(audit, feedback, errors[first : first + 1000].tolist(), calibration=calibration, first=first)
            result = CliRunner().invoke(app, ["monitor", str(audit), "--window", str(window), "--json"])
            group = json.loads(result.stdout)["groups"][0]
            rows.append(
                f"| {phase} | {window} | {group['labelled']} | {group['errors']} | {group['lower']:.3f} .. "
                f"{group['upper']:.3f} | {group['target']:.2f} | {group['status']} | {result.exit_code} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from calibration.artifact import load_artifact

    artifact = load_artifact(ARTIFACT)
    targets = Targets.from_artifact(artifact.target)
    target, confidence = targets.error_target("delivered"), targets.confidence_level
    assert target is not None and confidence is not None
    scenarios = [
        Scenario("easy 0.333 -> drift 0.921", EASY_ERROR, DRIFT_ERROR, window=50),
        Scenario("easy 0.333 -> drift 0.921", EASY_ERROR, DRIFT_ERROR, window=200),
        Scenario("easy 0.333 -> drift 0.921", EASY_ERROR, DRIFT_ERROR, window=None),
        Scenario("easy 0.333 -> drift 0.80", EASY_ERROR, 0.80, window=200),
        Scenario("easy 0.333 -> drift 0.921", EASY_ERROR, DRIFT_ERROR, window=200, confidence=0.99),
        Scenario("easy 0.333 -> drift 0.80", EASY_ERROR, 0.80, window=200, confidence=0.99),
        Scenario("easy 0.333 -> drift 0.921", EASY_ERROR, DRIFT_ERROR, window=200, every=200),
        Scenario("0.60, below the target, throughout", 0.60, 0.60, window=200, drift_n=0),
        Scenario("0.60, below the target, throughout", 0.60, 0.60, window=200, drift_n=0, every=200),
        Scenario("at the target 0.70 throughout", target, target, window=200, drift_n=0),
        Scenario("at the target 0.70 throughout", target, target, window=None, drift_n=0),
        Scenario("at the target 0.70 throughout", target, target, window=200, drift_n=0, confidence=0.99),
        Scenario("at the target 0.70 throughout", target, target, window=200, drift_n=0, every=200),
    ]
    started = time.perf_counter()
    lines = [
        "# Monitoring the guarantee: a simulated drift",
        "",
        f"- Command: `python -m benchmarks.monitor_drift --seeds {args.seeds} --out benchmarks/results/monitor.md`",
        f"- Machine: {machine_description()} (a shared, busy machine; only the run time below depends on it)",
        f"- Packages: {package_versions(['scipy', 'numpy'])}",
        f"- Artifact: `{ARTIFACT.relative_to(ARTIFACT.parents[2])}` (`{artifact.id}`): hedge_level "
        f"{targets.hedge_level}, so the target is an error rate of at most {target:.2f} among answered or hedged "
        f"requests (tier `delivered`), confidence {confidence:g}. It answers nothing outright (its answer target was "
        "infeasible), so the tier `answer` has no requests here.",
        f"- Simulated, not measured on a model: each labelled delivered request is wrong with probability "
        f"{EASY_ERROR:.3f} in the easy phase (the artifact's test part: 2 errors among 6 answered or hedged "
        f"questions) and {DRIFT_ERROR:.3f} in the drift phase (the artifact's test part: 619 errors among all 672 "
        "questions, what delivered answers look like when the gate's scores stop separating right from wrong), or "
        "0.80 (a milder drift). Seeds 0 .. "
        f"{args.seeds - 1} (numpy default_rng), one stream per seed; every label is labelled and arrives in order.",
        "- Rule (gate/monitor.py): one-sided Clopper-Pearson bounds (scipy.stats.beta quantiles) at the artifact's "
        "confidence; ALARM when the lower bound exceeds the target. The monitor is checked after every label (the "
        "worst case of a frequent cron job), or after every 200 (a cron job that runs once per window of labels); "
        "a false alarm is any alarm during the easy phase (1000 labels).",
        "",
        "| scenario | window | checked every | confidence | labels easy / drift | false alarms in the easy phase "
        "[95% Wilson] | labels into the drift until ALARM: median [2.5%, 97.5%] | not detected in the drift phase |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        result = run_scenario(scenario, args.seeds, target=target, confidence=confidence)
        false_alarms, seeds = int(result["false_alarms"]), int(result["seeds"])  # type: ignore[call-overload]
        low, high = wilson(false_alarms, seeds)
        delays = np.asarray(result["delays"], dtype=float)
        delay = "-" if not scenario.drift_n else (
            f"{np.median(delays):.0f} [{np.percentile(delays, 2.5):.0f}, {np.percentile(delays, 97.5):.0f}]"
            if delays.size else "never"
        )  # fmt: skip
        missed = "-" if not scenario.drift_n else f"{result['missed']} of {seeds}"
        lines.append(
            f"| {scenario.name} | {scenario.window or 'all labels'} | {scenario.every} label(s) | "
            f"{scenario.confidence or confidence:g} | "
            f"{scenario.easy_n} / {scenario.drift_n} | "
            f"{false_alarms} of {seeds} = {false_alarms / seeds:.3f} [{low:.3f}, {high:.3f}] | {delay} | {missed} |"
        )
    lines += [
        "",
        "`gate monitor` itself on seed 0 of the main scenario (real audit and feedback files, `--window 200 --json`):",
        "",
        "| when | window | labelled | errors | bounds | target | status | exit code |",
        "|---|---|---|---|---|---|---|---|",
        *check_cli(artifact.id, window=200),
        "",
        f"Run time: {time.perf_counter() - started:.0f} s on the machine above.",
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
