"""Time to the first sentence a client reads: a long answer streamed claim by claim vs buffered until decided.

Run: ``python -m benchmarks.claims_streaming [--n 10] [--max-tokens 128] [--out FILE]`` (embedded Gemma 3 270M).

Two routes, ``--n`` prompts each (nothing is fitted, tuned or chosen on them; every prompt is measured once per
way):

- grounded: "Summarise this passage: ..." over the first ``--n`` XQuAD paragraphs (a task over pasted text:
  its claims are checked against the passage by ``claim_support``, no call besides the answer);
- closed-book: "Write a short paragraph about <title>." for the same paragraphs' titles (expository: the claims
  are checked against 5 samples; the embedded model serves one call at a time, so they are drawn once the first
  claim is complete, not while the answer streams).

For each prompt the same gate (``create_gate`` on the default settings, familiarity cache off so neither way
warms it for the other, and a one-token call before each way so neither reuses the other's prompt evaluation)
assesses it two ways, in alternating order (ABBA): **buffered** (``Gate.assess``: the
client's first byte comes with the decision) and **streamed** (``Gate.assess_streamed`` with the ``annotate``
release: the first byte is the first released sentence). Greedy decoding: both ways write the same answer
(checked). Reported: per route, the median of each time and of the paired difference, with 95% percentile
bootstrap intervals (2,000 resamples, seed 0). Timings are wall-clock on whatever machine runs it; on this
project's shared 2-core CPU other work runs beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from estimators.claims import split_claims
from gate.assessment import Assessment
from gate.claim_stream import ClaimRelease
from gate.config import load_settings
from gate.factory import create_gate
from gate.pipeline import Gate

DATASET = Path("/work/shared/datasets/xquad_en.json")
EVICT = "Reply with one word."
SUMMARISE = "Summarise this passage in a few sentences:\n\n"


def prompts(n: int) -> dict[str, list[str]]:
    """``n`` grounded and ``n`` closed-book long-answer prompts from the first XQuAD articles."""
    articles = json.loads(DATASET.read_text(encoding="utf-8"))["data"][:n]
    return {
        "grounded": [
            f"Summarise this passage in a few sentences:\n\n{a['paragraphs'][0]['context']}" for a in articles
        ],
        "closed": [f"Write a short paragraph about {a['title'].replace('_', ' ')}." for a in articles],
    }


async def buffered(gate: Gate, prompt: str, max_tokens: int) -> tuple[float, float, str]:
    started = time.perf_counter()
    result = await gate.assess([{"role": "user", "content": prompt}], max_tokens=max_tokens)
    seconds = time.perf_counter() - started
    return seconds, seconds, result.answer or ""


async def streamed(gate: Gate, prompt: str, max_tokens: int) -> tuple[float, float, str]:
    release, first, answer = ClaimRelease("annotate", "[unverified: {claim}]"), None, ""
    started = time.perf_counter()
    async for item in gate.assess_streamed([{"role": "user", "content": prompt}], max_tokens=max_tokens):
        if isinstance(item, Assessment):
            answer = item.answer or ""
        elif release.add(item) and first is None:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return (total if first is None else first), total, answer


async def measure(n: int, max_tokens: int) -> dict[str, list[dict[str, Any]]]:
    gate = create_gate(load_settings(familiarity_cache="off"))
    await gate.llm.generate("Hello", max_tokens=1)  # load the model before timing anything
    rows: dict[str, list[dict[str, Any]]] = {}
    for route, texts in prompts(n).items():
        rows[route] = []
        for index, prompt in enumerate(texts):
            ways = [("buffered", buffered), ("streamed", streamed)]
            results = {}
            for name, way in ways if index % 2 == 0 else ways[::-1]:
                # the embedded model keeps the last prompt's evaluation: a one-token call in between makes both
                # ways start cold (otherwise the second way of a prompt reuses the first's work)
                await gate.llm.generate(EVICT, max_tokens=1)
                results[name] = await way(gate, prompt, max_tokens)
            same = results["buffered"][2] == results["streamed"][2]
            row = {
                "buffered_first_s": results["buffered"][0],
                "streamed_first_s": results["streamed"][0],
                "streamed_total_s": results["streamed"][1],
                "same_answer": same,
                "claims": len(split_claims(results["streamed"][2])),
            }
            rows[route].append(row)
            print(route, index, {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, str]:
    def median(values: np.ndarray) -> float:
        return float(np.median(values))

    out = {}
    columns = {
        "buffered: first byte (s)": np.array([r["buffered_first_s"] for r in rows]),
        "streamed: first sentence (s)": np.array([r["streamed_first_s"] for r in rows]),
        "streamed: whole reply (s)": np.array([r["streamed_total_s"] for r in rows]),
        "saved to first byte (s)": np.array([r["buffered_first_s"] - r["streamed_first_s"] for r in rows]),
    }
    for name, values in columns.items():
        low, high = bootstrap_interval(median, values)
        out[name] = f"{statistics.median(values.tolist()):.2f} [{low:.2f}, {high:.2f}]"
    early = sum(r["streamed_first_s"] < r["streamed_total_s"] - 0.01 for r in rows)
    out["first sentence out before the answer ended"] = f"{early} of {len(rows)}"
    out["same answer both ways"] = f"{sum(r['same_answer'] for r in rows)} of {len(rows)}"
    return out


def report(rows: dict[str, list[dict[str, Any]]], *, n: int, max_tokens: int) -> str:
    lines = [
        "## Streaming claim by claim: time to the first sentence (embedded Gemma 3 270M)",
        "",
        f"Command: `python -m benchmarks.claims_streaming --n {n} --max-tokens {max_tokens}`  ",
        f"Machine: {machine_description()}  ",
        f"Packages: {package_versions(['llama-cpp-python'])}  ",
        f"Setting: {n} grounded + {n} closed-book prompts (XQuAD paragraphs; see the script's docstring), greedy "
        f"answers of at most {max_tokens} tokens, each prompt measured once per way in ABBA order; medians with 95% "
        "percentile bootstrap intervals (2,000 resamples, seed 0). Wall-clock on a shared, busy 2-core CPU.",
        "",
    ]
    for route, route_rows in rows.items():
        values = summary(route_rows)
        if not lines[-1].startswith("|"):
            lines += ["| route | n | " + " | ".join(values) + " |", "|---" * (len(values) + 2) + "|"]
        lines.append(f"| {route} | {len(route_rows)} | " + " | ".join(values.values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="prompts per route")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None, help="also write the raw rows (JSON) here")
    parser.add_argument("--rows", type=Path, default=None, help="report rows written by --out instead of measuring")
    args = parser.parse_args()
    if args.rows is not None:
        rows = json.loads(args.rows.read_text(encoding="utf-8"))
    else:
        rows = asyncio.run(measure(args.n, args.max_tokens))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(report(rows, n=args.n, max_tokens=args.max_tokens))


if __name__ == "__main__":
    main()
