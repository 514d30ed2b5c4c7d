"""Is the grounding signal more than a length detector? HaluEval pairs where the hallucinated response is not
longer than the faithful one.

Run: ``.venv/bin/python -m benchmarks.claim_grounding_length [--dev 100 --test 300 --seed 0]``
HaluEval's hallucinated responses are usually longer than the faithful ones, so "shorter is faithful" is a
strong baseline (see the Grounding section). This re-scores the same test pairs as
``benchmarks.claim_grounding`` (same seed and split) with the dev-chosen variant (word overlap, mean over
claims, penalty 0.25; no embedder, so it takes seconds) and reports pairwise accuracy on all test pairs and
on the subset where the length baseline cannot win (hallucinated length <= faithful length, in characters).
Writes the "Grounding, length check" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from benchmarks.claim_grounding import FILES, load_pairs, make, pairwise_accuracy, score_pairs, with_interval
from benchmarks.longform_results import write_section

CHOSEN = ("overlap", "mean", 0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = [
        f"Command: `python -m benchmarks.claim_grounding_length --dev {args.dev} --test {args.test} "
        f"--seed {args.seed}`  ",
        "Variant: overlap, mean, penalty 0.25 (chosen on dev in the Grounding section); same test pairs.",
        "",
        "| dataset | subset | pairs | pairwise accuracy [95% CI] |",
        "|---|---|---|---|",
    ]
    for kind in FILES:
        pairs = load_pairs(kind, args.seed, args.dev + args.test)[args.dev :]
        scores = asyncio.run(score_pairs(pairs, make(*CHOSEN, None)))
        not_longer = np.array([len(p["hallucinated"]) <= len(p["right"]) for p in pairs])
        lines.append(f"| {kind} | all test pairs | {len(pairs)} | {with_interval(pairwise_accuracy, scores)} |")
        subset = scores[not_longer]
        cell = with_interval(pairwise_accuracy, subset) if len(subset) >= 10 else f"{pairwise_accuracy(subset):.3f}"
        lines.append(f"| {kind} | hallucinated not longer | {len(subset)} | {cell} |")
        print(lines[-2:])
    write_section("Grounding, length check", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
