"""Sample the embedded Gemma 3 270M on long-form prompts, for the closed-book claim route (``claim_consistency``).

Run: ``.venv/bin/python -m benchmarks.claim_samples [--minutes 30] [--source all|factscore|felm] [--n 5]``
Prompts, in this order: FActScore's "Tell me a bio of X." for each topic (seeded order), then FELM's
world-knowledge (``wk``) prompts, then FELM's other prompts (seeded order). Each prompt gets ``--n`` samples at
T=1 in one batched call (what ``ClaimConsistency`` draws). Results are appended to
``build/claim_samples/gemma-3-270m.jsonl`` (gitignored), one line per prompt, and prompts already there are
skipped, so the collection resumes where it stopped and a rerun is cheap. It stops after ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np

from gate.datasets.loaders import find_data_dir

SAMPLES = Path(__file__).resolve().parents[1] / "build" / "claim_samples" / "gemma-3-270m.jsonl"
FACTSCORE = find_data_dir() / "factscore_bios.jsonl"
FELM = find_data_dir() / "felm.jsonl"
# The embedded model's chat format asks for one short line (gate.backends.embedded.prompt_format); the answers
# judged here are paragraphs, so the samples are asked for a paragraph too (still one line: it stops at "\n").
SYSTEM = "Answer with a short factual paragraph of a few sentences."


def prompts(seed: int) -> list[dict[str, str]]:
    """Every prompt to sample, as {source, key, prompt}, in collection order."""
    rng = np.random.default_rng(seed)
    topics = sorted({json.loads(line)["topic"] for line in FACTSCORE.open(encoding="utf-8")})
    out = [
        {"source": "factscore", "key": topics[i], "prompt": f"Tell me a bio of {topics[i]}."}
        for i in rng.permutation(len(topics))
    ]
    felm = [json.loads(line) for line in FELM.open(encoding="utf-8")]
    wk = [row for row in felm if row["domain"] == "wk"]
    rest = [row for row in felm if row["domain"] != "wk"]
    for rows in (wk, rest):
        out += [
            {"source": "felm", "key": felm_key(rows[i]), "prompt": rows[i]["prompt"]}
            for i in rng.permutation(len(rows))
        ]
    return out


def felm_key(row: dict) -> str:
    """FELM numbers its answers within each domain, so the key is the domain and the index."""
    return f"{row['domain']}:{row['index']}"


def load_samples(path: Path = SAMPLES) -> dict[tuple[str, str], dict]:
    """The collected prompts by (source, key); a torn last line (an interrupted write) is ignored."""
    found: dict[tuple[str, str], dict] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        found[row["source"], row["key"]] = row
    return found


async def collect(args: argparse.Namespace) -> None:
    from gate.backends.embedded.local import LocalLLM

    done = load_samples()
    todo = [
        p for p in prompts(args.seed) if (p["source"], p["key"]) not in done and args.source in ("all", p["source"])
    ]
    print(f"{len(done)} prompts already sampled, {len(todo)} to go", flush=True)
    llm = LocalLLM()
    await llm.load()
    stop_at = time.monotonic() + 60 * args.minutes
    SAMPLES.parent.mkdir(parents=True, exist_ok=True)
    with SAMPLES.open("a", encoding="utf-8") as out:
        for count, item in enumerate(todo, 1):
            if time.monotonic() > stop_at:
                print("time is up", flush=True)
                break
            started = time.perf_counter()
            generations = await llm.generate(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": item["prompt"]}],
                n=args.n,
                temperature=1.0,
                max_tokens=args.max_tokens,
                seed=args.seed,
            )
            seconds = time.perf_counter() - started
            row = {
                **item,
                "samples": [g.text for g in generations],
                "n": args.n,
                "max_tokens": args.max_tokens,
                "seed": args.seed,
                "seconds": round(seconds, 3),
                "completion_tokens": sum(g.usage.completion_tokens for g in generations),
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(f"{count}/{len(todo)} {item['source']} {item['key'][:40]!r} {seconds:.1f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=("all", "factscore", "felm"), default="all", help="only these prompts")
    asyncio.run(collect(parser.parse_args()))


if __name__ == "__main__":
    main()
