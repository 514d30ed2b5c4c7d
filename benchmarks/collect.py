"""Collect graded signals for the cost study, in shards that resume: ``python -m benchmarks.collect``.

Two tiers, because the signals differ in price by an order of magnitude on 2 cores:

- ``core``: every question; the greedy answer with its token log-probs (free), five samples drawn in one
  call (consistency), and the one-pass familiarity of the two rarest concepts (the precheck candidate).
- ``extra``: a seeded subset; P(True) and verbalized confidence, one call each at least, to measure
  whether they pay for their calls (ablation in ``benchmarks/results/cost.md``).

Each shard ``i/k`` takes every k-th question of the seeded draw and writes its own cache, so two processes
(one per core) share the work, and a killed run resumes where it stopped. The caches are data, not
committed; the fitted artifacts and the reports are.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import time
from collections import Counter
from pathlib import Path

from estimators.base import Cost, Signal
from estimators.familiarity import aggregate_familiarity, familiarity_weights
from gate.backends.embedded.local import LocalLLM
from gate.config import DEFAULT_MODEL
from gate.offline.collect import collect, sample_items
from gate.offline.signal_cache import CachedRow, read_cache
from gate.pipeline import Gate
from gate.suite import CANDIDATE_SUITE, DEFAULT_SUITE, select
from gate.uncalibrated import Uncalibrated

DATASETS = (
    "trivia:1200",
    "nq_open:800",
    "efficientqa:400",
    "popqa:500",
    "sciq:300",
    "halueval:300",
    "hotpot:100",
)
"""3,600 questions; TriviaQA weighs most because the model answers it best (more correct answers to fit on)."""

TIERS = {
    "core": ("familiarity", "logprob_mean", "logprob_min", "consistency"),
    "extra": ("p_true", "verbalized"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="core")
    parser.add_argument("--shard", default="0/1", help="i/k: this process takes questions i, i+k, ...")
    parser.add_argument("--per-set-fraction", type=float, default=1.0, help="share of each set's draw (extra tier)")
    parser.add_argument("--out", type=Path, default=Path("build/collect"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merge", action="store_true", help="merge the tier's shards into one cache and exit")
    args = parser.parse_args()
    if args.merge:
        suite = DEFAULT_SUITE if args.tier == "core" else select(CANDIDATE_SUITE, list(TIERS[args.tier]))
        print(f"wrote {merge(args.tier, args.out, suite)}")
        return
    logging.basicConfig(level=logging.WARNING)
    index, count = (int(part) for part in args.shard.split("/"))
    datasets = [_scaled(entry, args.per_set_fraction) for entry in DATASETS]
    items = interleaved(sample_items(datasets, limit=None, seed=args.seed))[index::count]
    suite = select(CANDIDATE_SUITE, list(TIERS[args.tier]))
    cache = args.out / f"{args.tier}-{index}of{count}.signals.jsonl"
    # a question another shard (of this or an earlier sharding) already graded is not graded again
    elsewhere = {
        row.id for path in args.out.glob(f"{args.tier}-*.signals.jsonl") if path != cache for row in read_cache(path)[1]
    }
    items = [(dataset, item) for dataset, item in items if item.id not in elsewhere]
    asyncio.run(_run(items, suite, cache))


def interleaved(items: list) -> list:
    """The same items with the sets mixed in proportion, so a run stopped early still covers every set."""
    sizes = Counter(dataset for dataset, _ in items)
    position: Counter[str] = Counter()
    keyed = []
    for dataset, item in items:
        keyed.append(((position[dataset] + 0.5) / sizes[dataset], dataset, item))
        position[dataset] += 1
    return [(dataset, item) for _, dataset, item in sorted(keyed, key=lambda entry: entry[0])]


def _scaled(entry: str, fraction: float) -> str:
    name, _, n = entry.partition(":")
    return f"{name}:{max(1, round(int(n) * fraction))}"


async def _run(items: list, suite: tuple, cache: Path) -> None:
    llm = LocalLLM(n_threads=1)
    gate = Gate(llm, Uncalibrated(), suite=suite, concurrent_signals=False)
    started, seen = time.perf_counter(), [0, 0]

    def progress(row: object, cached: bool) -> None:
        seen[cached] += 1
        if not cached and seen[0] % 25 == 0:
            rate = seen[0] / (time.perf_counter() - started)
            print(f"{cache.name}: {seen[0]} new, {seen[1]} cached, {rate * 60:.1f} rows/min", flush=True)

    try:
        await collect(gate, items, cache, model=DEFAULT_MODEL, on_row=progress)
    finally:
        llm.process().close()
    print(f"{cache.name}: done, {seen[0]} new rows in {time.perf_counter() - started:.0f} s", flush=True)



def merge(tier: str, out_dir: Path, suite: tuple) -> Path:
    """One cache of a tier from its shards, each question once, with familiarity read at ``suite``'s
    ``max_concepts`` from the concepts scored at collection (rarest first, so the first ones are the same).
    """
    shards = sorted(out_dir.glob(f"{tier}-*of*.signals.jsonl"))
    head = json.loads(shards[0].read_text(encoding="utf-8").split("\n", 1)[0])
    wanted = {spec.key: spec for spec in suite}
    rows: dict[str, CachedRow] = {}
    for shard in shards:
        for row in read_cache(shard)[1]:
            rows.setdefault(row.id, _at_suite(row, wanted))
    keys = [key for key in head_keys(head) if key in wanted]
    merged = out_dir / f"{tier}.signals.jsonl"
    header = {**head, "suite": [wanted[key].to_dict() for key in keys]}
    merged.write_text(
        json.dumps(header) + "\n" + "".join(row.to_json() + "\n" for row in rows.values()), encoding="utf-8"
    )
    return merged


def _at_suite(row: CachedRow, wanted: dict) -> CachedRow:
    if "familiarity" not in row.signals or "familiarity" not in wanted:
        return row
    limit = wanted["familiarity"].params.get("max_concepts", 3)
    familiarity = fewer_concepts(row.signals["familiarity"], limit)
    return dataclasses.replace(row, signals={**row.signals, "familiarity": familiarity})


def head_keys(head: dict) -> list[str]:
    return [spec["key"] for spec in head["suite"]]


def fewer_concepts(signal: Signal, limit: int) -> Signal:
    """The familiarity signal as if only the ``limit`` rarest concepts had been scored (surprise method:
    each concept is one forced pass of its own, so the first ones are exactly what a smaller limit computes).
    The cost keeps one call per concept kept and that share of the seconds."""
    concepts = signal.details.get("concepts", [])
    if len(concepts) <= limit:
        return signal
    kept = concepts[:limit]
    share = limit / len(concepts)
    cost = Cost(
        calls=limit,
        completion_tokens=sum(len(c.get("token_logprobs", [])) for c in kept),
        seconds=signal.cost.seconds * share,
    )
    scores = [c["score"] for c in kept if c.get("score") is not None]
    details = {**signal.details, "concepts": kept, "derived_from": f"{len(concepts)} concepts scored at collection"}
    if not scores:
        return Signal(name=signal.name, cost=cost, details=details, error="no concept could be scored")
    aggregate = aggregate_familiarity(scores)
    details |= {"aggregate": aggregate, "weights": familiarity_weights(len(scores))}
    value = min(1.0, max(0.0, aggregate["weighted"]))
    return Signal(name=signal.name, confidence=value, raw=aggregate["weighted"], cost=cost, details=details)


if __name__ == "__main__":
    main()
