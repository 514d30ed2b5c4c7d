"""Each signal alone, per dataset, read from a ``gate calibrate`` signal cache (nothing recomputed).

Run: ``.venv/bin/python -m benchmarks.signals_from_cache CACHE.jsonl [--out benchmarks/results/signals.md]``
A single signal's AUROC involves no fitting, so every cached question counts as held out here; the
semantic-entropy row reads the consistency signal's entropy (lower = more confident).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import machine_description
from benchmarks.signals import Scored, table
from gate.offline.signal_cache import CachedRow, read_cache

RESULTS = Path(__file__).parent / "results" / "signals.md"


def _entropy_confidence(row: CachedRow) -> float | None:
    signal = row.signals.get("consistency")
    entropy = None if signal is None else signal.details.get("semantic_entropy")
    return None if entropy is None else -float(entropy)


def scored_by_dataset(rows: list[CachedRow], *, pooled: bool = False) -> dict[str, dict[str, Scored]]:
    """Per dataset (or all pooled), per signal: confidences, labels and costs as the signals benchmark keeps them."""
    out: dict[str, dict[str, Scored]] = defaultdict(dict)
    for row in rows:
        per_signal = out["all datasets pooled" if pooled else row.dataset]
        for key, signal in row.signals.items():
            result = per_signal.setdefault(key, Scored())
            result.confidences.append(signal.confidence)
            result.labels.append(row.correct)
            result.costs.append(signal.cost)
            result.errors += signal.error is not None
            if "n_samples_used" in signal.details:
                result.samples_used.append(int(signal.details["n_samples_used"]))
        if "consistency" in row.signals:
            entropy = per_signal.setdefault("semantic entropy (of the consistency samples)", Scored())
            entropy.confidences.append(_entropy_confidence(row))
            entropy.labels.append(row.correct)
            entropy.costs.append(row.signals["consistency"].cost)
    return out


def build(cache: Path) -> str:
    """The results file's text."""
    head, rows = read_cache(cache)
    lines = [
        "# Each signal alone on the embedded model, per dataset",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.signals_from_cache {cache.name}` on the signal cache written by"
        " `gate calibrate` (see `benchmarks/results/calibration.md` for the command); nothing is recomputed.",
        f"- Model: {head['model']}; greedy answer, few-shot Q/A format. Label: the answer contains a gold alias.",
        "- Signal settings (the default suite): " + "; ".join(
            f"`{s['key']}` = {s['estimator']} {s['params'] or ''}".rstrip() for s in head["suite"]
        ) + ". PACE scores only questions with passages (SciQ: its support passage, given as the reference).",
        "- Questions drawn at random per dataset (seed 0). Nothing is fitted to compute these AUROCs.",
        "- Intervals: 95% percentile bootstrap over questions, 2,000 resamples.",
        "- Seconds are wall time of each signal alone (signals ran one after the other), on two model processes"
        f" sharing the machine: {machine_description()}.",
        "",
    ]
    for dataset, scored in sorted(scored_by_dataset(rows).items()):
        subset = [row for row in rows if row.dataset == dataset]
        accuracy = float(np.mean([row.correct for row in subset]))
        answer_seconds = float(np.mean([row.answer_cost.seconds for row in subset]))
        lines += table(dataset, scored, accuracy, answer_seconds, len(subset))
    [(title, pooled)] = scored_by_dataset(rows, pooled=True).items()
    accuracy = float(np.mean([row.correct for row in rows]))
    lines += table(title, pooled, accuracy, float(np.mean([row.answer_cost.seconds for row in rows])), len(rows))
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.write_text(build(args.cache), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
