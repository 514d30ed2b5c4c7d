"""HaluEval QA: does the gate score the right answer above the hallucinated one? (``gate score``, no generation)

Run: ``.venv/bin/python -m benchmarks.halueval_pairs --pairs 100 [--estimators p_true,verbalized,pace]``
Each HaluEval QA item gives a question, a knowledge passage, a right answer and a hallucinated one. Both
answers are written as ``gate score`` input lines (the passage as their reference) and scored with the
shipped artifact as it is. The artifact's fit drew HaluEval questions of its own (their greedy answers, with
the same seeded order): those are skipped, so no pair's question was seen in fitting.
Writes ``benchmarks/results/halueval_pairs.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_description
from calibration.artifact import Artifact
from calibration.metrics import auroc
from gate.config import load_settings
from gate.datasets import load_halueval
from gate.factory import create_gate
from gate.offline.collect import sample_items
from gate.offline.score import score_file

RESULTS = Path(__file__).parent / "results" / "halueval_pairs.md"
RESAMPLES = 2000


def questions_fitted_on(artifact: Artifact) -> set[str]:
    """The HaluEval question ids ``gate calibrate`` drew for ``artifact``: the first N of its seeded order."""
    count = artifact.data.get("datasets", {}).get("halueval", 0)
    if not count:
        return set()
    drawn = sample_items([f"halueval:{count}"], limit=None, seed=artifact.data.get("split_seed", 0))
    return {item.id for _, item in drawn}


def write_inputs(path: Path, pairs: int, seed: int, *, skip: set[str] = frozenset()) -> int:
    """Two ``gate score`` lines per question: ``<id>:right`` and ``<id>:hallucinated``; returns how many
    questions of the seeded order were skipped (``skip``) before ``pairs`` were written."""
    items = load_halueval()
    kept, skipped = [], 0
    for index in np.random.default_rng(seed).permutation(len(items)):
        if len(kept) == pairs:
            break
        if items[int(index)].id in skip:
            skipped += 1
        else:
            kept.append(items[int(index)])
    with path.open("w", encoding="utf-8") as handle:
        for item in kept:
            for kind, response in (("right", item.answers[0]), ("hallucinated", item.metadata["hallucinated_answer"])):
                line = {"id": f"{item.id}:{kind}", "question": item.question, "response": response,
                        "references": list(item.context)}
                handle.write(json.dumps(line) + "\n")
    return skipped


def pairwise(scored: Path, read: str) -> tuple[np.ndarray, np.ndarray]:
    """Per question, the score of the right and of the hallucinated answer (``read``: a signal or the fused one)."""
    by_id: dict[str, dict[str, float]] = {}
    for text in scored.read_text(encoding="utf-8").splitlines():
        row = json.loads(text)
        question, kind = row["id"].rsplit(":", 1)
        value = row["gate"]["probability"] if read == "fused" else row["gate"]["signals"].get(read)
        by_id.setdefault(question, {})[kind] = np.nan if value is None else value
    right = np.array([v.get("right", np.nan) for v in by_id.values()])
    wrong = np.array([v.get("hallucinated", np.nan) for v in by_id.values()])
    return right, wrong


def _row(name: str, right: np.ndarray, wrong: np.ndarray, seed: int = 0) -> str:
    keep = ~(np.isnan(right) | np.isnan(wrong))
    right, wrong = right[keep], wrong[keep]
    if not len(right):
        return f"| {name} | n/a | n/a | 0 |"
    wins = (right > wrong) + 0.5 * (right == wrong)  # ties count half, as AUROC does
    rng = np.random.default_rng(seed)
    boots = [wins[rng.integers(0, len(wins), len(wins))].mean() for _ in range(RESAMPLES)]
    low, high = np.percentile(boots, [2.5, 97.5])
    labels = np.r_[np.ones(len(right), bool), np.zeros(len(wrong), bool)]
    return (f"| {name} | {wins.mean():.3f} [{low:.3f}, {high:.3f}] | {auroc(labels, np.r_[right, wrong]):.3f}"
            f" | {len(right)} |")


async def run(args: argparse.Namespace) -> str:
    """Score the pairs and return the results file's text."""
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    inputs, scored = work / "halueval_pairs.jsonl", work / "halueval_pairs.scored.jsonl"
    keys = [key.strip() for key in args.estimators.split(",")]
    gate = create_gate(load_settings(signals=None))
    fitted = questions_fitted_on(gate.calibration) if isinstance(gate.calibration, Artifact) else set()
    skipped = write_inputs(inputs, args.pairs, args.seed, skip=fitted)
    started = time.perf_counter()
    summary = await score_file(gate, inputs, scored, concurrency=1, signals=keys)
    seconds = time.perf_counter() - started
    lines = [
        "# HaluEval QA: the right answer against the hallucinated one, scored without generating",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.halueval_pairs --pairs {args.pairs} --estimators"
        f" {args.estimators} --seed {args.seed}` (it runs `gate score` on two lines per question).",
        f"- Artifact: `{gate.calibration.id}` (the shipped one, as it is). Its fit drew {len(fitted)} HaluEval"
        f" questions (their greedy answers): the {skipped} of them met in the seeded order were skipped, so no"
        f" pair below comes from a question it was fitted on. Signals: {keys};"
        " the knowledge passage is each line's reference (PACE). Familiarity reads the question only, so it"
        " cannot tell two answers apart and is left out.",
        f"- {args.pairs} other questions drawn at random from `halueval_qa.jsonl` (seed {args.seed}); {summary.scored}"
        f" lines scored in {seconds:.0f} s on {machine_description()}.",
        "- Pairwise accuracy: the share of questions whose right answer scores higher (ties count half), with"
        f" a 95% percentile bootstrap interval over questions ({RESAMPLES} resamples). AUROC: right vs"
        " hallucinated answers pooled.",
        "",
        "| score | pairwise accuracy [95% CI] | AUROC | pairs |",
        "|---|---|---|---|",
        _row("fused + calibrated (the gate's probability)", *pairwise(scored, "fused")),
        *(_row(key, *pairwise(scored, key)) for key in keys),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--estimators", default="p_true,verbalized,pace")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/halueval_pairs"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.write_text(asyncio.run(run(args)), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
