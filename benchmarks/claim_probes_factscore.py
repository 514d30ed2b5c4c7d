"""P(True) and familiarity per claim on FActScore sentences, with the embedded Gemma 3 270M
(``estimators.claim_probes``): does the model's own verdict, or its familiarity with what a sentence names,
tell the sentences people judged inaccurate from the rest?

Run: ``.venv/bin/python -m benchmarks.claim_probes_factscore [--answers 30] [--seed 0]``
The same sample and labels as ``benchmarks.longform_logprob`` (seeded FActScore answers that did not abstain;
a sentence is inaccurate when any of its human atomic facts is NS). P(True) asks whether the sentence is a
correct answer to the answer's prompt ("Tell me a bio of X"); familiarity scores the sentence's rarest concept
(one forced pass, concepts cached across sentences). AUROC and AUC-PR of catching inaccurate sentences with 95%
bootstrap intervals over answers; nothing is fitted or chosen on this data.
Writes the "P(True) and familiarity per claim (FActScore)" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from benchmarks.common import machine_description
from benchmarks.longform_logprob import by_answer, labelled_claims, sample_answers
from benchmarks.longform_results import write_section
from calibration.metrics import auprc_error, auroc
from estimators.claim_probes import claim_familiarity, claim_p_true

TITLE = "P(True) and familiarity per claim (FActScore)"


async def score(rows: list[dict]) -> tuple[list[int], list[bool], dict[str, list[float | None]], dict[str, float]]:
    from gate.backends.embedded.local import LocalLLM
    from gate.concept_cache import MemoryConceptCache

    llm, cache = LocalLLM(), MemoryConceptCache()
    groups, labels = [], []
    values: dict[str, list[float | None]] = {"P(True)": [], "familiarity": []}
    seconds = {"P(True)": 0.0, "familiarity": 0.0}
    for index, row in enumerate(rows):
        _, claims, ok = labelled_claims(row)
        started = time.perf_counter()
        verdicts = await claim_p_true(llm, row["input"], claims)
        seconds["P(True)"] += time.perf_counter() - started
        started = time.perf_counter()
        familiar = await claim_familiarity(llm, claims, cache=cache)
        seconds["familiarity"] += time.perf_counter() - started
        groups += [index] * len(claims)
        labels += ok
        values["P(True)"] += [s.confidence for s in verdicts]
        values["familiarity"] += [s.confidence for s in familiar]
    return groups, labels, values, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample_answers(args.answers, args.seed)
    groups, labels, values, seconds = asyncio.run(score(rows))
    g, y = np.array(groups), np.array(labels, dtype=float)
    lines = [
        f"Command: `python -m benchmarks.claim_probes_factscore --answers {args.answers} --seed {args.seed}`  ",
        f"Machine: {machine_description()} (shared with other jobs: timings are from a busy CPU)  ",
        f"Data: {len(rows)} FActScore answers drawn with seed {args.seed}, {len(y)} annotated sentences, "
        f"{int((1 - y).sum())} inaccurate (AUC-PR of chance {1 - y.mean():.3f}). Intervals: bootstrap over answers.",
        "",
        "| claim signal | sentences scored | AUROC (accurate vs not) | AUC-PR of catching inaccurate sentences | "
        "seconds per sentence |",
        "|---|---|---|---|---|",
    ]
    for name, raw in values.items():
        scored = np.array([v is not None for v in raw])
        c = np.array([v if v is not None else np.nan for v in raw], dtype=float)[scored]
        kept_groups, kept_y = g[scored], y[scored]
        lines.append(
            f"| {name} | {int(scored.sum())} | {by_answer(auroc, kept_groups, kept_y, c, len(rows))} | "
            f"{by_answer(auprc_error, kept_groups, kept_y, c, len(rows))} | {seconds[name] / len(y):.2f} |"
        )
    write_section(TITLE, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
