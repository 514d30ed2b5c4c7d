"""Whole-answer decisions of the grounded claim route on HaluEval summaries and dialogue responses: which
claim calibration should the gate use by default for answers over references?

Run: ``.venv/bin/python -m benchmarks.claim_route_decisions [--dev 100 --test 300 --seed 0]``
The same seeded pairs as ``benchmarks.claim_grounding`` (first ``--dev`` items choose, the next ``--test``
report). Each response (faithful and hallucinated) goes through :class:`gate.claim_judge.ClaimJudge` on the
grounded route (``claim_support``, no LLM call) with each candidate calibration: the shipped claim artifact
(fitted on HaluEval QA claims) and the explicit uncalibrated mapping. The whole-answer decision follows
:func:`gate.claim_verdict.answer_decision` (answer: every claim kept; abstain: none kept; else hedge).
Reported: the share of faithful responses answered (not abstained) and of hallucinated responses answered,
with 95% bootstrap intervals over pairs. The default is the candidate with the larger difference (faithful
answered minus hallucinated answered) on the dev pairs; test numbers are for reading only.
Writes the "Grounded route decisions" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from benchmarks.claim_grounding import FILES, load_pairs
from benchmarks.common import machine_description
from benchmarks.longform_results import write_section
from calibration.bootstrap import percentile_interval
from estimators.testing import ScriptedLLM
from gate.claim_judge import SHIPPED_GROUNDED, ClaimJudge, RouteCalibration
from gate.claim_verdict import answer_decision
from gate.config import DEFAULT_MODEL

RESAMPLES = 2000


async def not_abstained(judge: ClaimJudge, pairs: list[dict]) -> np.ndarray:
    """Shape (n, 2): whether the faithful and the hallucinated response escape abstention."""
    llm = ScriptedLLM([])
    out = np.zeros((len(pairs), 2))
    for i, pair in enumerate(pairs):
        for j, key in enumerate(("right", "hallucinated")):
            judged = await judge.judge(
                pair["question"], pair[key], llm=llm, references=pair["references"], conversation=None
            )
            out[i, j] = answer_decision(judged.verdicts) != "abstain"
    return out


def interval(values: np.ndarray) -> str:
    low, high = percentile_interval(lambda r: values[r].mean(), len(values), n_resamples=RESAMPLES, seed=0)
    return f"{values.mean():.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    candidates = {
        "shipped claim artifact (HaluEval QA)": RouteCalibration.from_path(
            SHIPPED_GROUNDED, "grounded", model=DEFAULT_MODEL
        ),
        "uncalibrated mapping": RouteCalibration.uncalibrated("grounded"),
    }
    rows, dev_margin = [], dict.fromkeys(candidates, 0.0)
    for kind in FILES:
        pairs = load_pairs(kind, args.seed, args.dev + args.test)
        for name, calibration in candidates.items():
            judge = ClaimJudge(grounded=calibration)
            dev = asyncio.run(not_abstained(judge, pairs[: args.dev]))
            test = asyncio.run(not_abstained(judge, pairs[args.dev :]))
            dev_margin[name] += (dev[:, 0] - dev[:, 1]).mean()
            rows.append((kind, name, dev, test))
    chosen = max(dev_margin, key=dev_margin.__getitem__)
    lines = [
        "Command: `python -m benchmarks.claim_route_decisions "
        f"--dev {args.dev} --test {args.test} --seed {args.seed}`  ",
        f"Machine: {machine_description()}  ",
        "Chosen on dev (faithful answered minus hallucinated answered, summed over both sets): "
        + ", ".join(f"{name} {margin:+.3f}" for name, margin in dev_margin.items())
        + f" -> **{chosen}**.",
        "",
        "| dataset | calibration | dev: faithful answered | dev: hallucinated answered | test: faithful answered | "
        "test: hallucinated answered |",
        "|---|---|---|---|---|---|",
    ]
    for kind, name, dev, test in rows:
        lines.append(
            f"| {kind} | {name} | {dev[:, 0].mean():.3f} | {dev[:, 1].mean():.3f} | {interval(test[:, 0])} | "
            f"{interval(test[:, 1])} |"
        )
    write_section("Grounded route decisions", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
