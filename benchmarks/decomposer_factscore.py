"""The LLM decomposer against people's atomic facts: FActScore sentences split by the embedded Gemma 3 270M.

Run: ``.venv/bin/python -m benchmarks.decomposer_factscore [--sentences 60] [--seed 0]``
A seeded sample of FActScore's annotated sentences (answers that did not abstain, sentences with at least one
human atomic fact). Each sentence is decomposed by :class:`estimators.claim_decomposer.ClaimDecomposer` on the
embedded model (greedy, one call per sentence) and compared with the human facts; the baseline keeps the
sentence as one fact (what the deterministic splitter gives).

Matching: a produced fact and a human fact match when the F1 of their content words (SQuAD-normalised, function
words removed, as in ``benchmarks/claims_split.py``) is at least 0.5; facts are paired greedily by decreasing F1,
each used once. Precision = matched / produced, recall = matched / human, per sentence, averaged over sentences,
with 95% percentile bootstrap intervals over sentences (2000 resamples, seed 0).
Writes the "Decomposer" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import numpy as np

from benchmarks.claims_split import CITATION, DATA, content_words
from benchmarks.common import machine_description
from benchmarks.longform_results import write_section
from calibration.bootstrap import percentile_interval
from estimators.claim_decomposer import ClaimDecomposer
from estimators.claims import Claim

MATCH_F1 = 0.5
RESAMPLES = 2000


def sample_sentences(n: int, seed: int) -> list[tuple[str, list[str]]]:
    """``n`` (sentence, human facts) pairs drawn with ``seed`` from the non-abstained answers."""
    pool = []
    for line in DATA.open(encoding="utf-8"):
        row = json.loads(line)
        if row["abstained"]:
            continue
        for sentence in row["sentences"]:
            facts = [f["text"] for f in sentence["human_atomic_facts"] or []]
            text = CITATION.sub("", sentence["text"]).strip()
            if facts and text:
                pool.append((text, facts))
    return random.Random(seed).sample(pool, n)


def word_f1(a: set[str], b: set[str]) -> float:
    common = len(a & b)
    return 0.0 if common == 0 else 2 * common / (len(a) + len(b))


def matched(produced: list[str], human: list[str]) -> int:
    """Pairs of a produced and a human fact with content-word F1 >= MATCH_F1, greedily, each fact used once."""
    words_p, words_h = [content_words(p) for p in produced], [content_words(h) for h in human]
    pairs = sorted(((word_f1(p, h), i, j) for i, p in enumerate(words_p) for j, h in enumerate(words_h)), reverse=True)
    used_p, used_h, count = set(), set(), 0
    for f1, i, j in pairs:
        if f1 < MATCH_F1:
            break
        if i not in used_p and j not in used_h:
            used_p.add(i)
            used_h.add(j)
            count += 1
    return count


def faithful_share(produced: list[str], sentence: str) -> float:
    """Share of produced facts whose content words all but 20% come from the sentence (nothing invented)."""
    source = content_words(sentence)
    return float(np.mean([len(content_words(p) - source) <= 0.2 * len(content_words(p)) for p in produced]))


def scores(outputs: list[list[str]], humans: list[list[str]]) -> dict[str, np.ndarray]:
    m = np.array([matched(p, h) for p, h in zip(outputs, humans, strict=True)], dtype=float)
    n_p = np.array([len(p) for p in outputs], dtype=float)
    n_h = np.array([len(h) for h in humans], dtype=float)
    precision, recall = m / n_p, m / n_h
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "produced": n_p, "human": n_h}


def interval(values: np.ndarray) -> str:
    low, high = percentile_interval(lambda r: values[r].mean(), len(values), n_resamples=RESAMPLES, seed=0)
    return f"{values.mean():.3f} [{low:.3f}, {high:.3f}]"


async def decompose_all(sentences: list[str]) -> tuple[list[list[str]], float, int, int]:
    from gate.backends.embedded.local import LocalLLM

    llm = LocalLLM()
    decomposer = ClaimDecomposer()
    outputs, decomposed, calls = [], 0, 0
    started = time.perf_counter()
    for text in sentences:  # one at a time: the embedded model decodes one request at a time anyway
        [result] = await decomposer.decompose([Claim(text, 0, len(text))], llm=llm)
        outputs.append([fact.text for fact in result.facts])
        decomposed += result.decomposed
        calls += result.cost.calls
    return outputs, (time.perf_counter() - started) / len(sentences), decomposed, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    drawn = sample_sentences(args.sentences, args.seed)
    sentences, humans = [s for s, _ in drawn], [h for _, h in drawn]
    outputs, seconds, decomposed, calls = asyncio.run(decompose_all(sentences))
    rows = {"LLM decomposer (Gemma 3 270M, greedy)": scores(outputs, humans), "sentence as one fact": None}
    rows["sentence as one fact"] = scores([[s] for s in sentences], humans)
    shares = [faithful_share(facts, sentence) for facts, sentence in zip(outputs, sentences, strict=True)]
    faithful = {
        "LLM decomposer (Gemma 3 270M, greedy)": np.array(shares),
        "sentence as one fact": np.ones(len(sentences)),
    }
    lines = [
        f"Command: `python -m benchmarks.decomposer_factscore --sentences {args.sentences} --seed {args.seed}`  ",
        f"Machine: {machine_description()} (shared with other jobs: timings are from a busy CPU)  ",
        f"Data: {len(sentences)} FActScore sentences drawn with seed {args.seed} (answers that did not abstain, "
        f"sentences with at least one human atomic fact); {int(sum(len(h) for h in humans))} human facts.  ",
        "Matching: content-word F1 >= 0.5, greedy one-to-one; per-sentence precision / recall / F1 averaged over "
        'sentences, 95% bootstrap intervals over sentences. "Facts stated by the sentence": share of a sentence\'s '
        "produced facts with at most 20% of their content words absent from the sentence (a fact that adds words "
        "the sentence never said is an invention of the decomposer, not a split).",
        "",
        "| facts from | facts per sentence | precision | recall | F1 | facts stated by the sentence |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in rows.items():
        lines.append(
            f"| {name} | {result['produced'].mean():.2f} (people: {result['human'].mean():.2f}) | "
            f"{interval(result['precision'])} | {interval(result['recall'])} | {interval(result['f1'])} | "
            f"{interval(faithful[name])} |"
        )
    lines += [
        "",
        f"Cost: {calls / len(sentences):.2f} LLM calls and {seconds:.2f} s per sentence on the embedded model; "
        f"{decomposed} of {len(sentences)} replies listed usable facts (the rest kept the sentence as one fact).",
        "",
        "Examples (first three sentences of the sample):",
        "",
    ]
    for sentence, facts, human in list(zip(sentences, outputs, humans, strict=True))[:3]:
        lines.append(f"- *{sentence}*  \n  model: {' | '.join(facts)}  \n  people: {' | '.join(human)}")
    write_section("Decomposer", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
