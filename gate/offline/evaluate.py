"""Does a fitted artifact still hold on new labelled data? Its own held-out numbers next to the new ones.

Nothing is refitted: the artifact is applied as it is, and the verdict compares the error rate among
answered requests on the new data with the target the thresholds were chosen for.
"""

from __future__ import annotations

import math
from typing import Any

from calibration.artifact import Artifact
from calibration.metrics import summarize
from calibration.report import ReportData, decision_mix


def drift_table(artifact: Artifact, data: ReportData, *, n_resamples: int = 1000) -> list[dict[str, object]]:
    """Rows of (quantity, at fitting (held out), on the new data) with 95% intervals."""
    new = summarize(data.y_correct, data.fused, n_resamples=n_resamples)
    mix = decision_mix(data.y_correct, data.fused, data.thresholds)
    old = artifact.metrics
    rows = [
        _row("fused AUROC", old.get("fused", {}).get("auroc"), new["auroc"]),
        _row("fused ECE", old.get("fused", {}).get("ece"), new["ece"]),
        _row("accuracy (ungated)", old.get("fused", {}).get("accuracy"), new["accuracy"]),
    ]
    for key in ("error_answered", "answer", "hedge", "abstain"):
        rows.append(_row(key.replace("_", " ") + " rate", old.get("decision_mix", {}).get(key), mix[key]))
    return rows


def verdict(artifact: Artifact, data: ReportData) -> str:
    """One plain line: do the thresholds still meet the artifact's target on this data, and by how much."""
    target_level = artifact.target.get("answer_level")
    if target_level is None:
        return "the artifact records no target, so there is nothing to check the thresholds against"
    allowed = 1.0 - float(target_level)
    error = decision_mix(data.y_correct, data.fused, data.thresholds)["error_answered"]
    if error["n"] == 0:
        return (f"thresholds still meet the target: n/a: nothing was answered at these thresholds "
                f"(target: error among answered at most {allowed:.2f})")
    value, high = error["value"], error["high"]
    if value <= allowed:
        margin = f"{allowed - value:.3f} under the allowed {allowed:.2f}"
        caveat = "" if high <= allowed else f"; the 95% interval reaches {high:.3f}, above it"
        return f"thresholds still meet the target: yes, error among answered {value:.3f} is {margin}{caveat}"
    return (f"thresholds still meet the target: no, error among answered {value:.3f} is {value - allowed:.3f} over "
            f"the allowed {allowed:.2f} ({error['k']} wrong of {error['n']} answered); refit with gate calibrate")


def _row(name: str, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, object]:
    return {"quantity": name, "at fitting (held out)": _fmt(old), "on this data": _fmt(new)}


def _fmt(value: dict[str, Any] | None) -> str:
    if not value or value.get("value") is None or _nan(value["value"]):
        return "n/a"
    low, high = value.get("low"), value.get("high")
    if low is None or high is None or _nan(low) or _nan(high):
        return f"{value['value']:.3f}"
    return f"{value['value']:.3f} [{low:.3f}, {high:.3f}]"


def _nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


