"""Claim-level grounding on HaluEval summarization and dialogue: is the faithful response scored above the
hallucinated one written for the same document? (``ClaimSupport``, no LLM call)

Run: ``.venv/bin/python -m benchmarks.claim_grounding [--dev 100 --test 300 --seed 0]``
Each dataset's items are shuffled with ``--seed``; the first ``--dev`` items choose the variant (similarity
kind, aggregate, missing-detail penalty) by mean dev pairwise accuracy over both datasets, and the next
``--test`` items, disjoint, report it. References: summarization = the document; dialogue = the knowledge
and the dialogue history (earlier turns), the question being the history's last human turn.
Metrics: pairwise accuracy = share of pairs where the faithful response scores higher (ties count one half);
AUROC = faithful vs hallucinated over all 2n responses; 95% percentile bootstrap over pairs (2000 resamples,
seed 0). Seconds per answer: the chosen variant scoring test answers with no embedding cache, model loaded.
Writes the "Grounding" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import machine_description
from benchmarks.longform_results import write_section
from calibration.bootstrap import percentile_interval
from calibration.metrics import auroc
from estimators.claim_support import ClaimSupport
from estimators.testing import ScriptedLLM

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
FILES = {"summarization": "halueval_summarization_3k.jsonl", "dialogue": "halueval_dialogue.jsonl"}
RESAMPLES = 2000
SIMILARITIES = ("minilm", "overlap")
AGGREGATES = ("min", "mean")
PENALTIES = (0.0, 0.25, 0.5, 0.75)
_LAST_HUMAN = re.compile(r"\[Human\]:(?!.*\[Human\]:)(.*?)(?:\[Assistant\]:|$)", re.S)


class CachingEmbedder:
    """Memoises an embedder's vectors by text: the two responses of a pair share their document."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            self._cache.update(zip(new, self.inner.embed(new), strict=True))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)


def load_pairs(kind: str, seed: int, count: int) -> list[dict]:
    """``count`` items in seeded order, as {question, references, right, hallucinated}."""
    rows = [json.loads(line) for line in (DATA / FILES[kind]).open(encoding="utf-8")]
    order = np.random.default_rng(seed).permutation(len(rows))[:count]
    pairs = []
    for index in order:
        row = rows[int(index)]
        if kind == "summarization":
            pairs.append(
                {
                    "question": "Summarize the document.",
                    "references": [row["document"]],
                    "right": row["right_summary"],
                    "hallucinated": row["hallucinated_summary"],
                }
            )
        else:
            history = row["dialogue_history"]
            last = _LAST_HUMAN.search(history)
            pairs.append(
                {
                    "question": last.group(1).strip() if last else history,
                    "references": [row["knowledge"], history],
                    "right": row["right_response"],
                    "hallucinated": row["hallucinated_response"],
                }
            )
    return pairs


async def score_pairs(pairs: list[dict], estimator: ClaimSupport) -> np.ndarray:
    """Scores of shape (n, 2): faithful, hallucinated (NaN when the estimator gave none)."""
    llm = ScriptedLLM([])
    out = np.full((len(pairs), 2), np.nan)
    for i, pair in enumerate(pairs):
        for j, key in enumerate(("right", "hallucinated")):
            signal = await estimator.score(pair["question"], pair[key], llm=llm, references=pair["references"])
            if signal.confidence is not None:
                out[i, j] = signal.confidence
    return out


def pairwise_accuracy(scores: np.ndarray) -> float:
    right, hallucinated = np.nan_to_num(scores[:, 0], nan=-1.0), np.nan_to_num(scores[:, 1], nan=-1.0)
    return float(np.mean((right > hallucinated) + 0.5 * (right == hallucinated)))


def pooled_auroc(scores: np.ndarray) -> float:
    y = np.r_[np.ones(len(scores)), np.zeros(len(scores))]
    return auroc(y, np.nan_to_num(np.r_[scores[:, 0], scores[:, 1]], nan=-1.0))


def with_interval(metric, scores: np.ndarray) -> str:
    low, high = percentile_interval(lambda rows: metric(scores[rows]), len(scores), n_resamples=RESAMPLES, seed=0)
    return f"{metric(scores):.3f} [{low:.3f}, {high:.3f}]"


def variant_name(similarity: str, aggregate: str, penalty: float) -> str:
    return f"{similarity}, {aggregate}, penalty {penalty:g}"


def make(similarity: str, aggregate: str, penalty: float, embedder: object) -> ClaimSupport:
    return ClaimSupport(
        embedder=embedder if similarity == "minilm" else None, aggregate=aggregate, missing_penalty=penalty
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-pairs", type=int, default=20)
    args = parser.parse_args()
    from retrieval.embedders import MiniLMEmbedder

    raw_embedder = MiniLMEmbedder()
    raw_embedder.embed(["warm up"])  # the model load is not part of any answer's cost
    embedder = CachingEmbedder(raw_embedder)
    data = {kind: load_pairs(kind, args.seed, args.dev + args.test) for kind in FILES}
    variants = list(itertools.product(SIMILARITIES, AGGREGATES, PENALTIES))
    dev, test = {}, {}
    for kind, pairs in data.items():
        for variant in variants:
            estimator = make(*variant, embedder)
            dev[kind, variant] = asyncio.run(score_pairs(pairs[: args.dev], estimator))
            test[kind, variant] = asyncio.run(score_pairs(pairs[args.dev :], estimator))
    dev_accuracy = {v: np.mean([pairwise_accuracy(dev[k, v]) for k in FILES]) for v in variants}
    chosen = max(variants, key=lambda v: dev_accuracy[v])
    print("chosen", chosen, dev_accuracy[chosen])
    best_minilm = max((v for v in variants if v[0] == "minilm"), key=lambda v: dev_accuracy[v])
    timing = {}
    for kind, pairs in data.items():
        timed = pairs[args.dev : args.dev + args.timing_pairs]
        for variant in dict.fromkeys((chosen, best_minilm)):
            started = time.perf_counter()
            asyncio.run(score_pairs(timed, make(*variant, raw_embedder)))
            timing[kind, variant] = (time.perf_counter() - started) / (2 * len(timed))
    lengths = {k: np.array([[-len(p["right"]), -len(p["hallucinated"])] for p in data[k][args.dev :]]) for k in FILES}
    command = f"python -m benchmarks.claim_grounding --dev {args.dev} --test {args.test} --seed {args.seed}"
    write_section(
        "Grounding", render(args, variants, chosen, best_minilm, dev, test, dev_accuracy, timing, lengths, command)
    )


def render(args, variants, chosen, best_minilm, dev, test, dev_accuracy, timing, lengths, command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine_description()}  ",
        f"Data: HaluEval summarization (first 3,000) and dialogue; per dataset {args.dev} dev pairs and "
        f"{args.test} disjoint test pairs (seeded shuffle, seed {args.seed}). Each pair: the faithful and the "
        "hallucinated response for the same document or knowledge. Signal: `ClaimSupport` (no LLM call); "
        "references = the document (summarization), the knowledge and the dialogue history (dialogue).",
        "",
        f"Chosen on dev (mean dev pairwise accuracy over both sets, {len(variants)} variants): "
        f"**{variant_name(*chosen)}** (dev {dev_accuracy[chosen]:.3f}).",
        "",
        f"Test (95% bootstrap intervals over pairs); the best MiniLM variant on dev ({variant_name(*best_minilm)}) "
        f"is shown too; seconds per answer over {args.timing_pairs} test pairs, no embedding cache, model loaded:",
        "",
        "| dataset | variant | pairs | pairwise accuracy | AUROC | seconds per answer |",
        "|---|---|---|---|---|---|",
    ]
    for kind in FILES:
        for label, variant in (("chosen", chosen), ("best MiniLM", best_minilm)):
            scores = test[kind, variant]
            lines.append(
                f"| {kind} | {label}: {variant_name(*variant)} | {len(scores)} | "
                f"{with_interval(pairwise_accuracy, scores)} | {with_interval(pooled_auroc, scores)} | "
                f"{timing[kind, variant]:.3f} |"
            )
        lines.append(
            f"| {kind} | baseline: shorter response is faithful | {len(lengths[kind])} | "
            f"{with_interval(pairwise_accuracy, lengths[kind])} | {with_interval(pooled_auroc, lengths[kind])} | 0 |"
        )
    lines += [
        "",
        "All variants (dev accuracy chose the row in bold; the test columns of the other rows are shown for "
        "reading only, choosing among them by test would overfit):",
        "",
        "| variant | dev acc. summ. | dev acc. dial. | test acc. summ. | test AUROC summ. | test acc. dial. "
        "| test AUROC dial. |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        name = f"**{variant_name(*v)}**" if v == chosen else variant_name(*v)
        cells = [
            f"{pairwise_accuracy(dev['summarization', v]):.3f}",
            f"{pairwise_accuracy(dev['dialogue', v]):.3f}",
            f"{pairwise_accuracy(test['summarization', v]):.3f}",
            f"{pooled_auroc(test['summarization', v]):.3f}",
            f"{pairwise_accuracy(test['dialogue', v]):.3f}",
            f"{pooled_auroc(test['dialogue', v]):.3f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
