"""Token probability per claim on FActScore: does Gemma 3 270M find the sentences people judged inaccurate less
likely? (``estimators.claim_logprob``, forced route: the answers were written by other models)

Run: ``.venv/bin/python -m benchmarks.longform_logprob [--answers 60] [--seed 0]``
A seeded sample of FActScore answers that did not abstain (InstructGPT, ChatGPT, PerplexityAI biographies).
Each annotated sentence (with at least one S or NS human atomic fact; inaccurate when any fact is NS) is scored
by the log-probs of its own tokens when the embedded model is forced to write the answer after the prompt,
claim by claim: the least likely token (``min``) and the mean. Metrics: AUROC of separating accurate from
inaccurate sentences and AUC-PR of catching the inaccurate ones (ranked by increasing probability; chance =
their share), with 95% percentile bootstrap intervals over *answers* (sentences of one answer resampled
together, 2000 resamples, seed 0). Nothing is fitted or chosen on this data.
Writes the "Token probability per claim (FActScore)" section of ``benchmarks/results/longform.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import numpy as np

from benchmarks.claims_split import CITATION, DATA
from benchmarks.common import machine_description
from benchmarks.longform_results import write_section
from calibration.bootstrap import percentile_interval
from calibration.metrics import auprc_error, auroc
from estimators.claim_logprob import aggregate, forced_claim_logprobs
from estimators.claims import Claim

RESAMPLES = 2000
TITLE = "Token probability per claim (FActScore)"


def sample_answers(n: int, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    rows = [r for r in rows if not r["abstained"] and r["sentences"]]
    return random.Random(seed).sample(rows, n)


def labelled_claims(row: dict) -> tuple[str, list[Claim], list[bool]]:
    """The answer without citation marks, its annotated sentences as claims (spans into it), accurate or not."""
    answer = CITATION.sub("", row["output"])
    claims, labels, position = [], [], 0
    for sentence in row["sentences"]:
        facts = [f["label"] for f in sentence["human_atomic_facts"] or [] if f["label"] in ("S", "NS")]
        text = CITATION.sub("", sentence["text"]).strip()
        start = answer.find(text, position)
        if not facts or not text or start < 0:
            continue
        claims.append(Claim(text, start, start + len(text)))
        labels.append("NS" not in facts)
        position = start + len(text)
    return answer, claims, labels


async def score(rows: list[dict]) -> tuple[list[int], list[bool], dict[str, list[float]], float, int]:
    from gate.backends.embedded.local import LocalLLM

    llm = LocalLLM()
    groups, labels, values, tokens = [], [], {"min": [], "mean": []}, 0
    started = time.perf_counter()
    for index, row in enumerate(rows):
        answer, claims, ok = labelled_claims(row)
        per_claim = await forced_claim_logprobs(llm, row["input"], answer, claims)
        for logprobs, accurate in zip(per_claim, ok, strict=True):
            low, mean = aggregate(logprobs, "min"), aggregate(logprobs, "mean")
            if low is None or mean is None:
                continue
            groups.append(index)
            labels.append(accurate)
            values["min"].append(low)
            values["mean"].append(mean)
            tokens += len(logprobs)
    return groups, labels, values, time.perf_counter() - started, tokens


def by_answer(metric, groups: np.ndarray, y: np.ndarray, c: np.ndarray, n_answers: int) -> str:
    members = [np.flatnonzero(groups == g) for g in range(n_answers)]

    def statistic(resampled: np.ndarray) -> float:
        rows = np.concatenate([members[g] for g in resampled])
        return metric(y[rows], c[rows])

    low, high = percentile_interval(statistic, n_answers, n_resamples=RESAMPLES, seed=0)
    return f"{metric(y, c):.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample_answers(args.answers, args.seed)
    groups, labels, values, seconds, tokens = asyncio.run(score(rows))
    g, y = np.array(groups), np.array(labels, dtype=float)
    chance = 1 - y.mean()
    lines = [
        f"Command: `python -m benchmarks.longform_logprob --answers {args.answers} --seed {args.seed}`  ",
        f"Machine: {machine_description()} (shared with other jobs: timings are from a busy CPU)  ",
        f"Data: {len(rows)} FActScore answers drawn with seed {args.seed}, {len(y)} annotated sentences, "
        f"{int((1 - y).sum())} inaccurate (share {chance:.3f} = the AUC-PR of chance). Intervals: bootstrap over "
        "answers.",
        "",
        "| claim signal | AUROC (accurate vs not) | AUC-PR of catching inaccurate sentences |",
        "|---|---|---|",
    ]
    for how in ("min", "mean"):
        c = np.array(values[how])
        lines.append(
            f"| token probability of the claim's tokens, {how} | {by_answer(auroc, g, y, c, len(rows))} | "
            f"{by_answer(auprc_error, g, y, c, len(rows))} |"
        )
    lines += [
        "",
        f"Cost: forced pass, {tokens / len(y):.1f} tokens and {seconds / len(y):.2f} s per sentence on the embedded "
        "model (no generation). On an answer the gate generated itself the same values come free from the "
        "answer's own log-probs (`claim_token_logprobs`).",
    ]
    write_section(TITLE, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
