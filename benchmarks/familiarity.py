"""Does the self-familiarity precheck track how well-known an entity is? PopQA on the embedded model.

Run: ``.venv/bin/python -m benchmarks.familiarity --popqa 200 --common 100``.
1. Scores the bundled common concepts and estimates the threshold (bootstrap CI of their 5th percentile).
2. Scores the first N PopQA questions (``metadata.s_pop`` = the subject's Wikipedia page views) and reports
   the Spearman correlation of the familiarity score with log s_pop (bootstrap 95% CI), the cost per
   question and the fraction flagged unfamiliar at the estimated threshold.
A wall-clock budget bounds the run: each phase stops early when its share is spent, and the report gives
the sizes actually scored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import ConstantInputWarning, spearmanr

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from estimators.concepts import extract_concepts, load_common_concepts
from estimators.familiarity import Familiarity, ThresholdEstimate, estimate_threshold
from gate.backends.embedded.local import LocalLLM

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
POPQA = ROOT.parent / "shared" / "datasets" / "popqa_1k.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "familiarity.md"
COMMON_SHARE = 0.35  # of the budget, for the threshold phase
CHUNK = 5  # common concepts between checks of the budget


@dataclass(frozen=True)
class Row:
    """One scored PopQA question."""

    question: str
    subject: str
    s_pop: int
    concepts: list[str]
    weighted: float | None
    min: float | None
    first: float | None
    familiar: bool | None
    calls: int
    seconds: float


async def common_scores(
    llm: LocalLLM, estimator: Familiarity, concepts: list[str], deadline: float
) -> dict[str, float]:
    """Score common concepts in small chunks until they are done or the deadline passes."""
    scores: dict[str, float] = {}
    for start in range(0, len(concepts), CHUNK):
        if time.perf_counter() > deadline:
            logger.info("threshold phase stopped by the budget after %d concepts", start)
            break
        chunk = concepts[start : start + CHUNK]
        results = [await estimator.concept_familiarity(c, llm=llm) for c in chunk]
        scores |= {r.concept: r.score for r in results if r.score is not None}
        logger.info("common concepts: %d scored", len(scores))
    return scores


async def popqa_rows(llm: LocalLLM, estimator: Familiarity, items: list[dict], deadline: float) -> list[Row]:
    """Assess PopQA questions in order until they are done or the deadline passes."""
    rows = []
    for item in items:
        if time.perf_counter() > deadline:
            logger.info("PopQA phase stopped by the budget after %d questions", len(rows))
            break
        started = time.perf_counter()
        signal = await estimator.assess(item["question"], llm=llm)
        seconds = time.perf_counter() - started
        aggregate = signal.details.get("aggregate", {})
        rows.append(
            Row(
                question=item["question"],
                subject=item["metadata"]["subj"],
                s_pop=int(item["metadata"]["s_pop"]),
                concepts=[c["concept"] for c in signal.details.get("concepts", [])],
                weighted=signal.confidence,
                min=aggregate.get("min"),
                first=aggregate.get("first"),
                familiar=signal.details.get("familiar"),
                calls=signal.cost.calls,
                seconds=seconds,
            )
        )
        if len(rows) % 10 == 0:
            logger.info("PopQA: %d questions scored", len(rows))
    return rows


def spearman_with_ci(scores: list[float], log_pop: list[float], *, seed: int) -> tuple[float, float, float]:
    """Spearman's rho and its 95% percentile-bootstrap interval over questions."""
    data = np.column_stack([scores, log_pop])

    def rho_of(rows: np.ndarray) -> float:
        with warnings.catch_warnings():  # a resample with a constant column gives nan, said in the report
            warnings.simplefilter("ignore", ConstantInputWarning)
            return float(spearmanr(rows[:, 0], rows[:, 1]).statistic)

    low, high = bootstrap_interval(rho_of, data, seed=seed)
    return rho_of(data), low, high


def report(args: argparse.Namespace, threshold: ThresholdEstimate, common: dict[str, float], rows: list[Row]) -> str:
    """The Markdown results file."""
    scored = [r for r in rows if r.weighted is not None]
    log_pop = [math.log(r.s_pop + 1) for r in scored]
    stopped = len(common) < args.common or len(rows) < args.popqa
    lines = [
        "# Self-familiarity precheck on PopQA (embedded Gemma 3 270M)",
        "",
        f"Command: `.venv/bin/python -m benchmarks.familiarity --popqa {args.popqa} --common {args.common} "
        f"--budget-minutes {args.budget_minutes} --threads {args.threads} --seed {args.seed}`",
        "",
        f"- Machine: {machine_description()}; load average at the end {os.getloadavg()[0]:.1f} "
        "(the machine was shared with other jobs, so seconds are pessimistic)",
        f"- Packages: {package_versions(['llama-cpp-python', 'numpy', 'scipy'])}; llama.cpp threads: {args.threads}",
        "- Estimator: `Familiarity()` defaults (max_concepts=3, explain_tokens=60), method `forced_continuation` "
        "(the embedded model scores forced continuations); seeds: bootstrap seed "
        f"{args.seed}, estimator seed 0 (unused by the greedy, forced path)",
        f"- Requested: {args.common} common concepts, {args.popqa} PopQA questions; budget {args.budget_minutes} min "
        f"({COMMON_SHARE:.0%} for the threshold phase). Scored: {len(common)} common concepts, {len(rows)} "
        f"PopQA questions (the first {len(rows)} of popqa_1k.jsonl), {len(scored)} with at least one concept."
        + (" The budget stopped the run before the requested sizes." if stopped else ""),
        "",
        "## Threshold (from the common concepts)",
        "",
        "| n | 5th percentile, bootstrap 95% CI | threshold (CI midpoint) | median common score |",
        "|---|---|---|---|",
        f"| {threshold.n} | [{threshold.ci_low:.4f}, {threshold.ci_high:.4f}] | {threshold.threshold:.4f} "
        f"| {float(np.median(list(common.values()))):.4f} |",
        "",
        "Lowest common concepts: "
        + ", ".join(f"{c} {v:.2g}" for c, v in sorted(common.items(), key=lambda item: item[1])[:8])
        + "; highest: "
        + ", ".join(f"{c} {v:.2g}" for c, v in sorted(common.items(), key=lambda item: -item[1])[:5])
        + ".",
        "",
        "## PopQA: familiarity vs. subject popularity",
        "",
        "| aggregate | Spearman rho with log(1 + s_pop) | bootstrap 95% CI | n |",
        "|---|---|---|---|",
    ]
    for name in ("weighted", "min", "first"):
        values = [getattr(r, name) for r in scored]
        rho, low, high = spearman_with_ci(values, log_pop, seed=args.seed)
        label = f"{name} (the confidence)" if name == "weighted" else name
        lines.append(f"| {label} | {rho:+.3f} | [{low:+.3f}, {high:+.3f}] | {len(scored)} |")
    lines += [*_flag_table(scored, threshold), *_cost_lines(rows), *_extraction_lines(rows), *_examples(scored)]
    return "\n".join(lines) + "\n"


def _flag_table(scored: list[Row], threshold: ThresholdEstimate) -> list[str]:
    median_pop = float(np.median([r.s_pop for r in scored]))
    low = [r for r in scored if r.s_pop <= median_pop]
    high = [r for r in scored if r.s_pop > median_pop]

    def flagged(group: list[Row]) -> str:
        return f"{sum(r.familiar is False for r in group) / len(group):.1%} of {len(group)}" if group else "n/a"

    return [
        "",
        f"## Flagged unfamiliar at the estimated threshold ({threshold.threshold:.4f})",
        "",
        "| questions | flagged unfamiliar |",
        "|---|---|",
        f"| all scored | {flagged(scored)} |",
        f"| s_pop <= median ({median_pop:.0f}) | {flagged(low)} |",
        f"| s_pop > median | {flagged(high)} |",
    ]


def _cost_lines(rows: list[Row]) -> list[str]:
    seconds = [r.seconds for r in rows]
    calls = [r.calls for r in rows]
    return [
        "",
        "## Cost per question (all scored questions, the precheck alone)",
        "",
        "| mean seconds | median seconds | mean LLM calls | mean concepts |",
        "|---|---|---|---|",
        f"| {np.mean(seconds):.2f} | {np.median(seconds):.2f} | {np.mean(calls):.2f} "
        f"| {np.mean([len(r.concepts) for r in rows]):.2f} |",
        "",
        "LLM calls count one greedy explanation per concept plus one forced-continuation call per surface "
        "variant of the concept (up to six).",
    ]


def _extraction_lines(rows: list[Row]) -> list[str]:
    exact = sum(any(c.lower() == r.subject.lower() for c in r.concepts) for r in rows)
    rarest = sum(extract_concepts(r.question, limit=1) == [r.subject] for r in rows)
    none = sum(not r.concepts for r in rows)
    return [
        "",
        "## Concept extraction check (PopQA's subject is the concept that matters)",
        "",
        f"- The subject is among the extracted concepts in {exact} of {len(rows)} questions and is the rarest "
        f"(first) concept in {rarest}; {none} questions gave no concept (precheck skipped).",
    ]


def _examples(scored: list[Row]) -> list[str]:
    ordered = sorted(scored, key=lambda r: r.weighted or 0.0)
    picked = ordered if len(ordered) <= 10 else ordered[:5] + ordered[-5:]
    lines = ["", "## Lowest and highest five", "", "| question | concepts | familiarity | s_pop |", "|---|---|---|---|"]
    for r in picked:
        lines.append(f"| {r.question} | {'; '.join(r.concepts)} | {r.weighted:.4f} | {r.s_pop} |")
    return lines


async def run(args: argparse.Namespace) -> None:
    """Both phases, then the report."""
    llm = LocalLLM(n_threads=args.threads)
    await llm.load()
    started = time.perf_counter()
    budget = args.budget_minutes * 60
    concepts = list(load_common_concepts()[: args.common])
    common = await common_scores(llm, Familiarity(), concepts, started + COMMON_SHARE * budget)
    threshold = estimate_threshold(list(common.values()), seed=args.seed)
    logger.info("threshold %s", threshold)
    with POPQA.open(encoding="utf-8") as handle:
        items = [json.loads(line) for line in handle if line.strip()][: args.popqa]
    rows = await popqa_rows(llm, Familiarity(threshold=threshold.threshold), items, started + budget)
    args.out.write_text(report(args, threshold, common, rows), encoding="utf-8")
    logger.info("wrote %s after %.0f s", args.out, time.perf_counter() - started)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--popqa", type=int, default=200, help="at most this many PopQA questions (the first N)")
    parser.add_argument("--common", type=int, default=100, help="at most this many common concepts")
    parser.add_argument("--budget-minutes", type=float, default=7.5, help="wall-clock budget of both phases")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 holds up best on a busy box)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
