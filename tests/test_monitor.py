"""The monitor of the guarantee: the bounds, the rule, the join, and ``gate monitor`` on a simulated drift.

The drift is the benchmark's (benchmarks/monitor_drift.py), smaller and with one seed: hedged requests under the
shipped artifact (at most 0.70 errors among delivered answers, confidence 0.9), first at the error rate its test
part shows (0.333), then at the model's base error rate (0.921), written to real audit and feedback files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import binomtest
from typer.testing import CliRunner

from benchmarks.monitor_drift import DRIFT_ERROR, EASY_ERROR, alarms_at, draw_errors, write_logs
from calibration.artifact import load_artifact
from gate.cli.main import app
from gate.factory import SHIPPED_ARTIFACT
from gate.monitor import (
    GroupReport,
    Label,
    LiveMonitor,
    Targets,
    error_bounds,
    evaluate,
    join,
    latest_labels,
    recalibration_command,
    status_of,
)

runner = CliRunner()
SHIPPED_ID = load_artifact(SHIPPED_ARTIFACT).id


@pytest.mark.parametrize(("errors", "labelled"), [(0, 1), (0, 40), (3, 40), (20, 40), (40, 40), (57, 200)])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.99])
def test_one_sided_bounds_are_the_exact_two_sided_interval_at_twice_the_miss_rate(errors, labelled, confidence):
    lower, upper = error_bounds(errors, labelled, confidence=confidence)
    two_sided = binomtest(errors, labelled).proportion_ci(confidence_level=2 * confidence - 1, method="exact")
    assert lower == pytest.approx(two_sided.low, abs=1e-9) and upper == pytest.approx(two_sided.high, abs=1e-9)
    assert lower <= errors / labelled <= upper


def test_an_alarm_is_the_exact_binomial_test_rejecting_the_target():
    target, confidence = 0.7, 0.9
    for labelled in (10, 50, 200):
        for errors in range(labelled + 1):
            lower, upper = error_bounds(errors, labelled, confidence=confidence)
            p_value = binomtest(errors, labelled, target, alternative="greater").pvalue
            assert (status_of(lower, upper, target) == "alarm") == (p_value < 1 - confidence)


def test_the_rule_ok_cannot_tell_alarm_and_no_target():
    assert status_of(0.1, 0.3, 0.35) == "ok"
    assert status_of(0.1, 0.35, 0.35) == "ok"  # the upper bound at the target: still met
    assert status_of(0.2, 0.5, 0.35) == "cannot_tell"
    assert status_of(0.36, 0.5, 0.35) == "alarm"
    assert status_of(0.36, 0.5, None) == "no_target"
    with pytest.raises(ValueError, match="errors <= labelled"):
        error_bounds(3, 2, confidence=0.9)


def test_a_report_counts_only_its_window_and_reports_no_labels():
    key = ("t", "a", "delivered")
    report = GroupReport.of(key, [False] * 100 + [True] * 20, target=0.5, confidence=0.9, window=20)
    assert (report.labelled, report.errors, report.error_rate, report.status) == (20, 20, 1.0, "alarm")
    empty = GroupReport.of(key, [], target=0.5, confidence=0.9)
    assert empty.status == "no_labels" and empty.lower is None


def test_targets_come_from_the_artifact_as_error_rates():
    targets = Targets.from_artifact({"answer_level": 0.55, "hedge_level": 0.3, "confidence_level": 0.9})
    assert targets.error_target("answer") == 0.45 and targets.error_target("delivered") == 0.7
    assert Targets.from_artifact(None).error_target("answer") is None
    command = recalibration_command(targets)
    assert command.startswith("gate calibrate -d ")
    assert "--answer-level 0.55 --hedge-level 0.3 --confidence-level 0.9" in command


def test_the_join_keeps_the_latest_label_and_says_where_the_others_went():
    labels, malformed = latest_labels(
        [
            {"request_id": "a", "correct": True, "tenant": "acme"},
            {"request_id": "a", "correct": False},  # relabelled: the latest wins
            {"request_id": "b", "correct": True},
            {"request_id": "c", "correct": "yes"},  # not a boolean
            None,  # a torn line
            {"request_id": "ghost", "correct": False},
        ]
    )
    assert malformed == 2 and labels["a"] == Label(False, None)
    audit = [
        {"request_id": "a", "decision": "answer", "calibration": "art", "tenant": "acme"},
        {"request_id": "b", "decision": "abstain", "calibration": "art"},
        {"request_id": "d", "decision": "hedge", "calibration": "art"},  # served, never labelled
        None,
    ]
    joined = join(audit, labels)
    assert [(r.request_id, r.tenant, r.decision, r.correct) for r in joined.requests] == [
        ("a", "acme", "answer", False)
    ]
    assert joined.counts() | {"malformed_labels": 0} == {
        "labels": 3, "joined": 1, "not_delivered": 1, "unjoined": 1, "malformed_labels": 0, "malformed_records": 1
    }  # fmt: skip
    reports = evaluate(joined.requests, targets={"art": Targets(0.55, 0.3, 0.9)})
    assert [(r.tenant, r.tier, r.labelled, r.errors, r.target) for r in reports] == [
        ("acme", "answer", 1, 1, 0.45), ("acme", "delivered", 1, 1, 0.7)
    ]  # fmt: skip


def test_the_live_monitor_joins_only_requests_it_served_and_keeps_the_latest_label():
    live = LiveMonitor(window=3, recent=2)
    targets = Targets(0.55, 0.3, 0.9)
    for index in range(3):
        live.remember({"request_id": f"r{index}", "decision": "hedge", "calibration": "art"})
    live.remember({"request_id": "x", "decision": "abstain"})  # not monitored
    assert live.label("r0", True, targets=targets) is None  # forgotten: beyond `recent`
    assert live.label("x", True, targets=targets) is None
    live.label("r1", False, targets=targets)
    (report,) = live.label("r1", True, targets=targets) or []  # relabelled: counts once, as correct
    assert (report.tier, report.labelled, report.errors, report.tenant) == ("delivered", 1, 0, "default")


# --- the simulated drift through real files and `gate monitor` ------------------------------------------------


def drift_logs(tmp_path: Path, *, easy_n: int, drift_n: int) -> tuple[Path, Path]:
    errors = draw_errors(7, easy_n=easy_n, drift_n=drift_n, easy_error=EASY_ERROR, drift_error=DRIFT_ERROR)
    audit, feedback = tmp_path / "audit.jsonl", tmp_path / "audit.feedback.jsonl"
    write_logs(audit, feedback, errors.tolist(), calibration=SHIPPED_ID, abstained_every=10)
    return audit, feedback


def monitor(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["monitor", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_monitor_is_ok_on_the_easy_phase_and_raises_the_alarm_after_the_drift(tmp_path):
    audit, _ = drift_logs(tmp_path / "easy", easy_n=300, drift_n=0)
    code, out, err = monitor(str(audit), "--window", "100")
    assert code == 0, out + err
    assert "default  " + SHIPPED_ID in out and "delivered" in out and "OK" in out and "ALARM" not in out + err
    assert "labels: 330 request(s) labelled, 300 answered or hedged, 30 on requests not answered" in out

    audit, _ = drift_logs(tmp_path / "drift", easy_n=300, drift_n=100)
    code, out, err = monitor(str(audit), "--window", "100")
    assert code == 2, out + err
    assert "ALARM" in out and f"ALARM: tenant default, artifact {SHIPPED_ID}, tier delivered" in err
    assert "recalibrate: gate calibrate -d" in err and "--hedge-level 0.3 --confidence-level 0.9" in err
    # all of the history dilutes the drift: without a window the same labels do not show it yet
    code, out, _ = monitor(str(audit))
    assert code == 0 and "ALARM" not in out


def test_the_json_report_and_the_alarm_point_match_the_benchmark(tmp_path):
    audit, feedback = drift_logs(tmp_path, easy_n=300, drift_n=100)
    code, out, _ = monitor(str(audit), "--feedback", str(feedback), "--window", "100", "--json")
    (group,) = json.loads(out)["groups"]
    assert code == 2 and group["status"] == "alarm" and group["labelled"] == 100 and group["target"] == 0.7
    errors = draw_errors(7, easy_n=300, drift_n=100, easy_error=EASY_ERROR, drift_error=DRIFT_ERROR)
    assert group["errors"] == int(errors[-100:].sum())
    fired = alarms_at(errors, target=0.7, confidence=0.9, window=100, start=300)
    assert fired is not None and 300 < fired <= 400
    assert alarms_at(errors, target=0.7, confidence=0.9, window=100, stop=300) is None  # no false alarm before


def test_options_override_the_artifact_and_unknown_artifacts_have_no_target(tmp_path):
    audit, _ = drift_logs(tmp_path, easy_n=200, drift_n=0)
    code, out, _ = monitor(str(audit), "--hedge-level", "0.9", "--json")  # a 0.10 error target: far exceeded
    assert code == 2 and json.loads(out)["groups"][0]["target"] == pytest.approx(0.1)
    lines = audit.read_text().replace(SHIPPED_ID, "other@v1:0").splitlines()
    audit.write_text("\n".join(lines) + "\n")
    code, out, _ = monitor(str(audit))
    assert code == 0 and "no target" in out


def test_usage_errors_exit_with_1(tmp_path):
    assert monitor("--bogus")[0] == 1
    assert monitor(str(tmp_path / "missing.jsonl"))[0] == 1
    assert "no audit log at" in monitor(str(tmp_path / "missing.jsonl"))[2]
    assert monitor(str(tmp_path / "a.jsonl"), "--window", "0")[0] == 1
    code, _, err = monitor(str(tmp_path / "a.jsonl"), "--confidence-level", "0")
    assert code == 1 and "--confidence-level is a probability strictly between 0 and 1, got 0" in err
    audit, _ = drift_logs(tmp_path, easy_n=5, drift_n=0)
    code, _, err = monitor(str(audit), "--redis", "redis://127.0.0.1:1/0")
    assert code == 1 and "not both" in err
    code, _, err = monitor("--redis", "redis://:hunter2@127.0.0.1:1/0")  # nothing listens on port 1
    assert code == 1 and "cannot read the Redis streams at redis://:***@127.0.0.1:1/0" in err and "hunter2" not in err
