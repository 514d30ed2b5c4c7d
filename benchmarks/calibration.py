"""The shipped artifact against the calibration issue's targets, on its held-out test split.

Run after ``gate calibrate`` (the commands are in the results file):
``.venv/bin/python -m benchmarks.calibration --artifact gate/data/gemma-3-270m.calibration.json --signals CACHE``
Writes ``benchmarks/results/calibration.md`` (``--out`` to write elsewhere). Nothing here is fitted: the
artifact is applied as it is to the rows of the split it never saw. Each stage reads the signals its
fusion selection kept (``artifact.full.signals``); every signal of the suite is still shown alone, and the
best of them, on the rows where it has a value, is the one the fused gate must beat. The free stage's
thresholds are the cascade's early exits, so the decisions of the full stage alone and of the cascade as
served are shown apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from benchmarks.common import describe_target, machine_description
from calibration.artifact import Artifact, load_artifact
from calibration.bootstrap import bootstrap_interval
from calibration.fitting import cascade_mix, split_rows
from calibration.metrics import auroc, ece
from calibration.report import decision_mix, wilson_interval
from calibration.thresholds import NEVER, decisions
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


def _both_classes(y: np.ndarray) -> bool:
    return len(y) > 1 and 0 < int(y.sum()) < len(y)


def best_signal(y: np.ndarray, signals: Mapping[str, np.ndarray]) -> tuple[str, float, np.ndarray] | None:
    """The signal with the highest AUROC on the rows where it has a value: its key, AUROC and those rows."""
    found = None
    for key, values in signals.items():
        seen = ~np.isnan(values)
        if _both_classes(y[seen]):
            score = auroc(y[seen], values[seen])
            if found is None or score > found[1]:
                found = (key, score, seen)
    return found


def readers(artifact: Artifact) -> dict[str, str]:
    """For each signal, the stages that read it ("precheck, free, full"); a signal no stage reads is absent."""
    names: dict[str, list[str]] = {} if artifact.precheck_threshold is None else {"familiarity": ["precheck"]}
    for stage_name, stage in artifact.stages.items():
        for key in stage.signals:
            names.setdefault(key, []).append(stage_name)
    return {key: ", ".join(stages) for key, stages in names.items()}


def _p(threshold: float) -> str:
    return "never" if threshold >= NEVER else f"{threshold:.4g}"


def threshold_lines(artifact: Artifact) -> list[str]:
    """Each stage's two boundaries, named, with how each was chosen."""
    lines = []
    for name, stage in artifact.stages.items():
        t = stage.thresholds
        lines += [
            f"- {name} stage, answer at p >= {_p(t.hedge)}: {t.answer_result.message}",
            f"- {name} stage, abstain at p < {_p(t.abstain)}: {t.hedge_result.message}",
        ]
    return lines


def _counts(counts: Mapping[str, int] | None) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) if counts else "not recorded"


def decision_lines(y: np.ndarray, decisions: Mapping[str, np.ndarray]) -> list[str]:
    """Answer / hedge / abstain and the two decision targets, for each way of deciding."""
    ungated = float(1 - y.mean())
    lines = [
        "| decided by | answer | hedge | abstain | error among answered [95% Wilson] | error among delivered |"
        f" correct answers answered | error <= ungated / 2 ({ungated / 2:.3f}) | answers >= 1/4 of correct |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, decision in decisions.items():
        mix = cascade_mix(np.asarray(decision).astype(str), y)
        answered = np.asarray(decision) == "answer"
        n, errors = int(answered.sum()), int((answered & ~y).sum())
        if n:
            low, high = wilson_interval(errors, n, 0.95)
            error = f"{errors / n:.3f} [{low:.3f}, {high:.3f}] ({n} answered)"
        else:
            error = "- (none answered)"
        delivered = mix["error_among_delivered"]
        share = mix["correct_answered_share"]
        lines.append(
            f"| {name} | {mix['answer']:.3f} | {mix['hedge']:.3f} | {mix['abstain']:.3f} | {error} |"
            f" {'-' if np.isnan(delivered) else f'{delivered:.3f}'} | {share:.3f} ({int((answered & y).sum())} of"
            f" {int(y.sum())}) | {'yes' if n and errors / n <= ungated / 2 else 'no'} |"
            f" {'yes' if share >= 0.25 else 'no'} |"
        )
    return lines


def build(artifact_path: Path, cache: Path) -> str:
    """The results file's text."""
    artifact = load_artifact(artifact_path)
    _, rows = read_cache(cache)
    data = report_data(artifact, rows)
    split = split_rows([row.id for row in rows], seed=artifact.data.get("split_seed", 0))
    test_rows = [row for row, part in zip(rows, split, strict=True) if part == "test"]
    y, fused = data.y_correct, data.fused
    best = best_signal(y, data.signals)
    mix = decision_mix(y, fused, data.thresholds)
    ungated = mix["error_ungated"]["value"]
    answered_error = mix["error_answered"]
    correct_answered = float(((fused >= data.thresholds["hedge"]) & y).sum() / max(1, y.sum()))
    probability, cascade_decision, stage = cascade_outcomes(artifact, test_rows)
    read_by = readers(artifact)
    target = artifact.target
    accuracy = artifact.data.get("accuracy")
    if best is None:
        gain_row = "| fused AUROC above the best single signal by at least 0.03 | no signal has both classes | - |"
    else:
        key, score, seen = best
        on = "" if seen.all() else f", on the {int(seen.sum())} rows it scored"
        gain = auroc(y[seen], fused[seen]) - score
        paired = _paired_gain(y[seen], fused[seen], data.signals[key][seen])
        gain_row = (
            f"| fused AUROC above the best single signal ({key}, {score:.3f}{on}) by at least 0.03"
            f" | gain {paired} (fused {_interval(auroc, y, fused)})"
            f" | {'yes' if gain >= 0.03 else 'no'} |"
        )
    if answered_error["n"]:
        answered_cell = (
            f"{answered_error['value']:.3f} [{answered_error['low']:.3f}, {answered_error['high']:.3f}]"
            f" on {answered_error['n']} answered"
        )
    else:
        answered_cell = "nothing answered: no answer threshold met the target (see Thresholds)"
    precheck = cascade_decision[stage == "precheck"]
    withheld = int((y & (stage == "precheck")).sum())
    lines = [
        "# The shipped calibration artifact for the embedded model, on held-out questions",
        "",
        f"- Artifact: `{artifact_path}` (`{artifact.id}`), fitted {artifact.created}.",
        f"- Data: {_counts(artifact.data.get('datasets'))} questions drawn at random (seed"
        f" {artifact.data.get('split_seed')}); splits {_counts(artifact.data.get('splits'))}; greedy-answer accuracy"
        f" {'not recorded' if accuracy is None else f'{accuracy:.3f}'}.",
        "- Target of the thresholds: "
        + (
            describe_target(target["answer_level"], target["hedge_level"], target.get("confidence_level", 0.9),
                            target.get("method", "ltt"))
            if {"answer_level", "hedge_level"} <= set(target) else str(target)
        )
        + ".",
        "- Stages (signals each reads, as its fusion selection chose): "
        + "; ".join(f"{name} `{info.get('fusion')}` + {info.get('calibrator')}"
                    for name, info in artifact.data.get("fit", {}).items())
        + f"; suite: {', '.join(spec['key'] for spec in artifact.current_suite)}.",
        f"- Machine: {machine_description()}. Intervals: 95% percentile bootstrap over the {len(y)} test"
        f" questions, {RESAMPLES} resamples (seed 0); decision rates: Wilson intervals.",
        "",
        "## Targets (issue 4), measured on the test split",
        "",
        "The full stage's probability and thresholds (every signal computed); the cascade as served is below.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        gain_row,
        f"| ECE at most 0.05 | {_interval(ece, y, fused)} | {'yes' if ece(y, fused) <= 0.05 else 'no'} |",
        f"| error among answered at most half the ungated error ({ungated:.3f} / 2 = {ungated / 2:.3f})"
        f" | {answered_cell}"
        f" | {'yes' if answered_error['value'] <= ungated / 2 else 'no'} |",  # NaN (nothing answered) compares False
        f"| answers at least a quarter of the questions the model gets right | {correct_answered:.3f}"
        f" ({int(((fused >= data.thresholds['hedge']) & y).sum())} of {int(y.sum())})"
        f" | {'yes' if correct_answered >= 0.25 else 'no'} |",
        "",
        "## Each signal alone and fused (test split)",
        "",
        "| signal | read by | AUROC | ECE | rows |",
        "|---|---|---|---|---|",
        f"| fused + calibrated (full stage) | - | {_interval(auroc, y, fused)} | {_interval(ece, y, fused)}"
        f" | {len(y)} |",
    ]
    for key, values in data.signals.items():
        seen = ~np.isnan(values)
        if _both_classes(y[seen]):
            lines.append(f"| {key} | {read_by.get(key) or 'no stage'} | {_interval(auroc, y[seen], values[seen])} |"
                         f" {_interval(ece, y[seen], values[seen])} | {int(seen.sum())} |")
        else:
            lines.append(f"| {key} | {read_by.get(key) or 'no stage'} | - | - | {int(seen.sum())} |")
    full_calls = data.request_costs["full pipeline"]["calls"]
    cascade_calls = data.request_costs["with cascade"]["calls"]
    full_decision = decisions(fused, artifact.full.thresholds)
    lines += [
        "",
        "## Cost cascade (test split)",
        "",
        f"- Decided at: precheck {np.mean(stage == 'precheck'):.1%}, free stage {np.mean(stage == 'free'):.1%},"
        f" full stage {np.mean(stage == 'full'):.1%}.",
        f"- The precheck abstained on {len(precheck)} questions, {withheld} of them answered correctly by the"
        f" model ({withheld} of the {int(y.sum())} correct answers withheld).",
        f"- LLM calls per request: {full_calls:.2f} with every signal, {cascade_calls:.2f} with the cascade"
        f" ({cascade_calls / full_calls:.0%}).",
        f"- AUROC of the probability the cascade reports: {_interval(auroc, y, probability)}"
        f" vs {auroc(y, fused):.3f} with every signal ({auroc(y, probability) / auroc(y, fused):.0%}).",
        "",
        "## Decisions (test split)",
        "",
        *decision_lines(y, {"full stage alone": full_decision, "cascade (as served)": cascade_decision}),
        "",
        "## Thresholds",
        "",
        *threshold_lines(artifact),
        "- Precheck threshold (familiarity): "
        + ("off (no cut met the rule)" if artifact.precheck_threshold is None else f"{artifact.precheck_threshold:.4g}")
        + ".",
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
