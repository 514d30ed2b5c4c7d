"""Labelled claim rows for claim-level calibration: one row per claim, grouped by the answer it came from.

Two routes, each with the signal the gate would compute at run time:

- **grounded** (``claim_support``): HaluEval QA, each answer one claim against its knowledge; the right answer
  is supported, the hallucinated one is not (the dataset's own label). The per-claim value is what
  ``ClaimSupport.score`` reports in ``details["claims"][i]["support"]``.
- **closed-book** (``claim_consistency``): FActScore sentences scored against samples of the embedded
  Gemma 3 270M for the same prompt (``benchmarks.claim_samples``); a sentence is unsupported when any of its
  human atomic facts is NS, and sentences with only IR facts are dropped. The value is the estimator's
  scoring core, ``score_claims`` with one group per sample (as ``ClaimConsistency.score`` calls it), rounded
  as ``details["claims"]`` rounds it. FELM segments are scored the same way, for evaluation only.

HaluEval summarization and dialogue responses are scored claim by claim for the response-level evaluation;
their claims carry no label of their own (a hallucinated summary mixes supported and invented sentences), so
they are never fitted on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.claim_grounding import load_pairs
from benchmarks.claim_samples import FACTSCORE, FELM, felm_key
from benchmarks.claims_split import CITATION
from estimators.claim_support import ClaimSupport, score_claims
from estimators.claims import Claim
from estimators.testing import ScriptedLLM
from gate.datasets.loaders import find_data_dir

HALUEVAL_QA = find_data_dir() / "halueval_qa.jsonl"


@dataclass(frozen=True)
class ClaimRows:
    """Claims as parallel arrays: the answer each belongs to, supported or not, and the signal's value."""

    group: np.ndarray
    supported: np.ndarray
    value: np.ndarray
    source: str
    length: np.ndarray | None = None
    """Characters of each claim, for the length baseline (HaluEval's hallucinated answers are longer)."""

    def __len__(self) -> int:
        return len(self.value)

    def subset(self, mask: np.ndarray) -> ClaimRows:
        length = None if self.length is None else self.length[mask]
        return ClaimRows(self.group[mask], self.supported[mask], self.value[mask], self.source, length)


def _rows(
    groups: list[str], labels: list[bool], values: list[float], source: str, lengths: list[int] | None = None
) -> ClaimRows:
    length = None if lengths is None else np.array(lengths, dtype=float)
    return ClaimRows(np.array(groups), np.array(labels, dtype=bool), np.array(values, dtype=float), source, length)


def claim_supports(signal_details: Mapping[str, Any]) -> list[float]:
    """Per-claim values of a ``claim_support`` / ``claim_consistency`` signal, in claim order."""
    return [float(claim["support"]) for claim in signal_details.get("claims", ())]


async def _halueval_qa(
    params: Mapping[str, Any], limit: int | None
) -> tuple[list[str], list[bool], list[float], str, list[int]]:
    estimator, llm = ClaimSupport(**params), ScriptedLLM([])
    groups, labels, values, lengths = [], [], [], []
    with HALUEVAL_QA.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if limit is not None and index >= limit:
                break
            row = json.loads(line)
            for key, supported in (("right_answer", True), ("hallucinated_answer", False)):
                signal = await estimator.score(row["question"], row[key], llm=llm, references=[row["knowledge"]])
                for claim in signal.details.get("claims", ()):
                    # both answers of an item share the knowledge: they go to one split together
                    groups.append(f"qa:{index}")
                    labels.append(supported)
                    values.append(float(claim["support"]))
                    lengths.append(len(claim["text"]))
    return groups, labels, values, "halueval_qa", lengths


def grounded_rows(params: Mapping[str, Any], limit: int | None = None) -> ClaimRows:
    """HaluEval QA answers as claims with their ``claim_support`` values (no LLM call)."""
    return _rows(*asyncio.run(_halueval_qa(params, limit)))


def length_matched_items(max_difference: int = 2) -> set[str]:
    """HaluEval QA items whose two answers differ by at most ``max_difference`` words (as group ids).

    The right answers are mostly short names (median 2 words) and the hallucinated ones sentences (median 9,
    95% end with a period), so on all items the form alone nearly gives the label; on these items it does less.
    """
    matched = set()
    with HALUEVAL_QA.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            row = json.loads(line)
            if abs(len(row["right_answer"].split()) - len(row["hallucinated_answer"].split())) <= max_difference:
                matched.add(f"qa:{index}")
    return matched


def sample_groups(samples: Sequence[str]) -> list[list[str]]:
    """One evidence group per non-empty sample, as ``ClaimConsistency`` builds them."""
    return [[s.strip()] for s in samples if s.strip()]


def consistency_values(texts: Sequence[str], samples: Sequence[str], question: str, penalty: float) -> list[float]:
    """``claim_consistency`` per-claim values of ``texts`` (each one claim) against ``samples``."""
    groups = sample_groups(samples)
    if not groups or not texts:
        return [float("nan")] * len(texts)
    claims = [Claim(text, 0, len(text)) for text in texts]
    scores = score_claims(claims, groups, embedder=None, extra_vocabulary=question, missing_penalty=penalty)
    return [round(s.support, 4) for s in scores]  # as details["claims"] reports it


def factscore_sentences() -> list[dict[str, Any]]:
    """Annotated FActScore sentences: topic, prompt, text (citation marks removed), supported."""
    out = []
    for line in FACTSCORE.open(encoding="utf-8"):
        row = json.loads(line)
        if row["abstained"]:
            continue
        for index, sentence in enumerate(row["sentences"] or ()):
            facts = [f["label"] for f in sentence["human_atomic_facts"] or [] if f["label"] in ("S", "NS")]
            text = CITATION.sub("", sentence["text"]).strip()
            if facts and text:  # IR-only sentences carry no factual label
                out.append(
                    {
                        "topic": row["topic"],
                        "answer": f"{row['model']}:{row['topic']}",
                        "index": index,
                        "text": text,
                        "supported": "NS" not in facts,
                    }
                )
    return out


def closed_rows(samples: Mapping[tuple[str, str], dict], penalty: float) -> ClaimRows:
    """FActScore sentences of the topics that have Gemma samples, with their ``claim_consistency`` values.

    The group is the topic: the three models' biographies of one person share the samples.
    """
    sentences = [s for s in factscore_sentences() if ("factscore", s["topic"]) in samples]
    groups, labels, values = [], [], []
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for sentence in sentences:
        by_topic.setdefault(sentence["topic"], []).append(sentence)
    for topic, items in by_topic.items():
        sampled = samples["factscore", topic]
        found = consistency_values([s["text"] for s in items], sampled["samples"], sampled["prompt"], penalty)
        for item, value in zip(items, found, strict=True):
            groups.append(topic)
            labels.append(item["supported"])
            values.append(value)
    return _rows(groups, labels, values, source="factscore")


def felm_rows(samples: Mapping[tuple[str, str], dict], penalty: float) -> tuple[ClaimRows, np.ndarray]:
    """FELM segments of the prompts that have Gemma samples (evaluation only), and each segment's domain."""
    groups, labels, values, domains = [], [], [], []
    for line in FELM.open(encoding="utf-8"):
        row = json.loads(line)
        sampled = samples.get(("felm", felm_key(row)))
        if sampled is None or sampled["prompt"] != row["prompt"]:
            continue
        if len(row["labels"]) != len(row["segmented_response"]):
            continue  # a few FELM rows label a different number of segments than they list: no alignment
        found = consistency_values(row["segmented_response"], sampled["samples"], row["prompt"], penalty)
        for label, value in zip(row["labels"], found, strict=True):
            groups.append(f"felm:{felm_key(row)}")
            labels.append(bool(label))
            values.append(value)
            domains.append(row["domain"])
    return _rows(groups, labels, values, source="felm"), np.array(domains)


async def _pair_claims(pairs: list[dict], params: Mapping[str, Any]) -> list[tuple[list[float], list[float]]]:
    estimator, llm = ClaimSupport(**params), ScriptedLLM([])
    out = []
    for pair in pairs:
        both = []
        for key in ("right", "hallucinated"):
            signal = await estimator.score(pair["question"], pair[key], llm=llm, references=pair["references"])
            both.append(claim_supports(signal.details))
        out.append((both[0], both[1]))
    return out


def halueval_pair_claims(
    kind: str, params: Mapping[str, Any], *, seed: int = 0, skip: int = 100, count: int = 300
) -> list[tuple[list[float], list[float]]]:
    """Per-claim ``claim_support`` values of the faithful and the hallucinated response of each test pair.

    The pairs are the Grounding section's test pairs (``benchmarks.claim_grounding``: seeded order, the first
    ``skip`` chose the variant), so nothing here was fitted or chosen on them.
    """
    pairs = load_pairs(kind, seed, skip + count)[skip:]
    return asyncio.run(_pair_claims(pairs, params))
