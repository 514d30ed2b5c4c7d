"""Claim consistency on FActScore: is a biography sentence that people judged inaccurate less supported by the
other models' biographies of the same person? (``score_claims`` with one group per other answer, no LLM call)

Run: ``.venv/bin/python -m benchmarks.claim_consistency_factscore [--minilm]``
A cross-model proxy for SelfCheckGPT's setting: the "samples" of a sentence are the other two models'
answers (InstructGPT, ChatGPT, PerplexityAI) to the same "Tell me a bio of X" prompt, not samples from the
same model, because no sampling model is run here. A sentence is inaccurate when any of its human atomic facts
is labelled NS; sentences with no S or NS fact are left out, as are topics with no other non-abstained answer.
Metrics: AUC-PR of catching inaccurate sentences (ranked by increasing support; chance = their share) and
AUROC, with 95% percentile bootstrap intervals over sentences (2000 resamples, seed 0).
Writes the "Consistency (FActScore, cross-model)" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

from benchmarks.claim_grounding import RESAMPLES, CachingEmbedder
from benchmarks.claims_split import CITATION, DATA
from benchmarks.common import machine_description
from benchmarks.longform_results import write_section
from calibration.bootstrap import percentile_interval
from calibration.metrics import auprc_error, auroc
from estimators.claim_support import score_claims
from estimators.claims import Claim


def collect(embedder: object | None, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Per annotated sentence: accurate (1) or not (0), and its mean support by the other answers."""
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    by_topic = defaultdict(list)
    for row in rows:
        if not row["abstained"] and row["sentences"]:
            by_topic[row["topic"]].append(row)
    labels, supports = [], []
    for answers in by_topic.values():
        for row in answers:
            others = [[CITATION.sub("", o["output"])] for o in answers if o is not row]
            if not others:
                continue
            kept = []
            for sentence in row["sentences"]:
                facts = [f["label"] for f in sentence["human_atomic_facts"] or [] if f["label"] in ("S", "NS")]
                if facts:
                    text = CITATION.sub("", sentence["text"])
                    kept.append((Claim(text, 0, len(text)), "NS" not in facts))
            if not kept:
                continue
            scores = score_claims(
                [c for c, _ in kept], others, embedder=embedder, extra_vocabulary=row["input"], missing_penalty=penalty
            )
            labels += [ok for _, ok in kept]
            supports += [s.support for s in scores]
    return np.array(labels, dtype=float), np.array(supports)


def interval(metric, y: np.ndarray, c: np.ndarray) -> str:
    low, high = percentile_interval(lambda r: metric(y[r], c[r]), len(y), n_resamples=RESAMPLES, seed=0)
    return f"{metric(y, c):.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", action="store_true", help="also score with MiniLM cosine")
    args = parser.parse_args()
    variants: dict[str, object | None] = {"overlap": None}
    if args.minilm:
        from retrieval.embedders import MiniLMEmbedder

        variants["minilm"] = CachingEmbedder(MiniLMEmbedder())  # each biography is a sample twice
    lines = [
        f"Command: `python -m benchmarks.claim_consistency_factscore{' --minilm' if args.minilm else ''}`  ",
        f"Machine: {machine_description()}  ",
        "Setting: each FActScore sentence scored by its support in the *other models'* biographies of the same "
        "person (a cross-model proxy; not samples of the same model), mean over those answers; sentence "
        "inaccurate = any human fact NS. No variant was tuned on this set: the penalties are reported side by "
        "side.",
        "",
        "| similarity | missing penalty | sentences | inaccurate share (AUC-PR chance) | AUC-PR inaccurate | AUROC "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, embedder in variants.items():
        for penalty in (0.0, 0.5):
            started = time.perf_counter()
            y, c = collect(embedder, penalty)
            seconds = time.perf_counter() - started
            lines.append(
                f"| {name} | {penalty:g} | {len(y)} | {1 - y.mean():.3f} | {interval(auprc_error, y, c)} | "
                f"{interval(auroc, y, c)} | {seconds:.1f} |"
            )
            print(lines[-1])
    write_section("Consistency (FActScore, cross-model)", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
