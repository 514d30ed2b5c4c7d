"""The shipped artifact against the calibration issue's targets, on its held-out test split.

Run after ``gate calibrate`` (the commands are in the results file):
``.venv/bin/python -m benchmarks.calibration --artifact gate/data/gemma-3-270m.calibration.json --signals CACHE``
Writes ``benchmarks/results/calibration.md``. Nothing here is fitted: the artifact is applied as it is
to the rows of the split it never saw.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import machine_description
from calibration.artifact import load_artifact
from calibration.bootstrap import bootstrap_interval
from calibration.fitting import split_rows
from calibration.metrics import auroc, ece
from calibration.report import decision_mix
from gate.offline.calibrate import cascade_outcomes, report_data
from gate.offline.signal_cache import read_cache

RESULTS = Path(__file__).parent / "results" / "calibration.md"
RESAMPLES = 2000


def _interval(metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, c: np.ndarray) -> str:
    found = bootstrap_interval(metric, y, c, n_resamples=RESAMPLES, seed=0)
    return f"{found.value:.3f} [{found.low:.3f}, {found.high:.3f}]"


def _paired_gain(y: np.ndarray, fused: np.ndarray, single: np.ndarray, seed: int = 0) -> str:
    """Fused AUROC minus the signal's, with a paired bootstrap interval over the same resampled rows."""
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        if 0 < y[rows].sum() < len(rows):
            gains.append(auroc(y[rows], fused[rows]) - auroc(y[rows], single[rows]))
    low, high = np.percentile(gains, [2.5, 97.5])
    return f"{auroc(y, fused) - auroc(y, single):+.3f} [{low:+.3f}, {high:+.3f}]"


def build(artifact_path: Path, cache: Path) -> str:
    """The results file's text."""
    artifact = load_artifact(artifact_path)
    _, rows = read_cache(cache)
    data = report_data(artifact, rows)
    split = split_rows([row.id for row in rows], seed=artifact.data.get("split_seed", 0))
    test_rows = [row for row, part in zip(rows, split, strict=True) if part == "test"]
    y, fused = data.y_correct, data.fused
    singles = {key: values for key, values in data.signals.items() if not np.isnan(values).any()}
    aurocs = {key: auroc(y, values) for key, values in singles.items()}
    best = max(aurocs, key=aurocs.get)
    mix = decision_mix(y, fused, data.thresholds)
    ungated = mix["error_ungated"]["value"]
    answered_error = mix["error_answered"]["value"]
    correct_answered = float(((fused >= data.thresholds["hedge"]) & y).sum() / max(1, y.sum()))
    probability, _, stage = cascade_outcomes(artifact, test_rows)
    lines = [
        "# The shipped calibration artifact for the embedded model, on held-out questions",
        "",
        f"- Artifact: `{artifact_path}` (`{artifact.id}`), fitted {artifact.created}.",
        f"- Data: {artifact.data.get('datasets')} questions drawn at random (seed {artifact.data.get('split_seed')});"
        f" splits {artifact.data.get('splits')}; greedy-answer accuracy {artifact.data.get('accuracy'):.3f}.",
        f"- Target of the thresholds: {artifact.target}.",
        f"- Machine: {machine_description()}. Intervals: 95% percentile bootstrap over the {len(y)} test"
        f" questions, {RESAMPLES} resamples (seed 0); decision rates: Wilson intervals.",
        "",
        "## Targets (issue 4), measured on the test split",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| fused AUROC above the best single signal ({best}, {aurocs[best]:.3f}) by at least 0.03"
        f" | gain {_paired_gain(y, fused, singles[best])} (fused {_interval(auroc, y, fused)})"
        f" | {'yes' if auroc(y, fused) - aurocs[best] >= 0.03 else 'no'} |",
        f"| ECE at most 0.05 | {_interval(ece, y, fused)} | {'yes' if ece(y, fused) <= 0.05 else 'no'} |",
        f"| error among answered at most half the ungated error ({ungated:.3f} / 2 = {ungated / 2:.3f})"
        f" | {answered_error:.3f} [{mix['error_answered']['low']:.3f}, {mix['error_answered']['high']:.3f}]"
        f" on {mix['error_answered']['n']} answered"
        f" | {'yes' if answered_error <= ungated / 2 else 'no'} |",  # NaN (nothing answered) compares False
        f"| answers at least a quarter of the questions the model gets right | {correct_answered:.3f}"
        f" ({int(((fused >= data.thresholds['hedge']) & y).sum())} of {int(y.sum())})"
        f" | {'yes' if correct_answered >= 0.25 else 'no'} |",
        "",
        "## Each signal alone and fused (test split)",
        "",
        "| signal | AUROC | ECE | rows |",
        "|---|---|---|---|",
        f"| fused + calibrated | {_interval(auroc, y, fused)} | {_interval(ece, y, fused)} | {len(y)} |",
    ]
    for key, values in data.signals.items():
        seen = ~np.isnan(values)
        if seen.sum() > 1 and 0 < y[seen].sum() < seen.sum():
            lines.append(f"| {key} | {_interval(auroc, y[seen], values[seen])} |"
                         f" {_interval(ece, y[seen], values[seen])} | {int(seen.sum())} |")
    full_calls = data.request_costs["full pipeline"]["calls"]
    cascade_calls = data.request_costs["with cascade"]["calls"]
    lines += [
        "",
        "## Cost cascade (test split)",
        "",
        f"- Decided at: precheck {np.mean(stage == 'precheck'):.1%}, free stage {np.mean(stage == 'free'):.1%},"
        f" full stage {np.mean(stage == 'full'):.1%}.",
        f"- LLM calls per request: {full_calls:.2f} with every signal, {cascade_calls:.2f} with the cascade"
        f" ({cascade_calls / full_calls:.0%}).",
        f"- AUROC of the probability the cascade reports: {_interval(auroc, y, probability)}"
        f" vs {auroc(y, fused):.3f} with every signal ({auroc(y, probability) / auroc(y, fused):.0%}).",
        "",
        "## Thresholds",
        "",
        *[f"- {note}" for note in data.threshold_notes],
        f"- Precheck threshold (familiarity): {artifact.precheck_threshold}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--signals", type=Path, required=True, help="the signal cache the artifact was fitted on")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.write_text(build(args.artifact, args.signals), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
