"""How well ``gate.request_kind.classify`` tells factual, grounded, non-factual and tool-call requests apart.

Run (the reported numbers): ``python -m benchmarks.request_kinds --split test --write``
Develop rules on the dev split only: ``python -m benchmarks.request_kinds --split dev`` (lists its errors).

Builds ``--per-kind`` labelled requests of each kind from the shared datasets (``--data-dir``, default the
project's ``find_data_dir()``) with the split's templates (:mod:`benchmarks.request_kind_dev`,
:mod:`benchmarks.request_kind_heldout`), classifies each, and reports the confusion matrix, per-kind
precision and recall with 95% percentile bootstrap intervals (rows resampled, fixed seed), the rate of factual
requests passed as non-factual (the costly error), per-family accuracy and the time per request. ``--write``
writes ``benchmarks/results/request_kinds.md`` (test split only).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import bootstrap_interval, machine_description
from benchmarks.request_kind_data import KINDS, Example, Sources, build
from gate.datasets import find_data_dir
from gate.request_kind import RequestKind, classify

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "request_kinds.md"
N_RESAMPLES = 2000
SHOWN_ERRORS = 40

HOW_BUILT = """\
## How the sets were built

Each split has 300 requests of each kind, drawn with `random.Random(seed)` from templates filled with text
of the shared datasets (read in place, never copied); the family column below names template group and source.
- **factual**: questions as the datasets hold them, some wrapped ("Quick one: ...", "I was wondering, ...") or
  behind a system prompt; long-form requests (FActScore "Tell me a bio of X" topics, expository templates such as
  "Write a 200-word article on X" over dataset entities); two-turn follow-ups (an entity or a question and its
  gold answer, then "Who directed it?" / "Why is that?"); on the test split also real user prompts (FELM
  world-knowledge and science).
- **grounded**: passages of the sets (SciQ support, HotpotQA gold paragraphs, XQuAD contexts, HaluEval news
  articles, HaluEval QA knowledge) in summarise / extract / answer-from-the-text templates; a document in the
  system prompt (RAG style, or HaluEval dialogue knowledge with its dialogue as turns); a passage pasted in turn
  one and asked about in turn two.
- **non_factual**: creative templates over dataset entities ("Compose a sonnet about X"); rewrite, translate and
  proofread templates over dataset sentences (the same passages the grounded requests use, so the verb must
  decide); code requests and pasted code; chit-chat and opinion/advice lists; two-turn edits ("Make it rhyme").
- **tool_call**: requests that offer tools (two disjoint sets of schemas, `tool_choice` absent / auto /
  required / a named function) with questions of the sets; agent loops whose last message is a tool result
  (one call, or parallel calls).

Held out: the test split (`benchmarks/request_kind_heldout.py`) was written and committed before any rule of
`gate/request_kind*.py` (commit "held-out test templates, written before any classifier rule"); the rules were
developed on the dev split only (`benchmarks/request_kind_dev.py`: other templates, tool schemas and mostly
other sources; shared files split by row parity). The kinds below are those of the rules' first run on the
test split; afterwards only the wording of reasons changed, and this page was regenerated with the same
matrix. Caveat: one author wrote both template sets and the rules, so the split guards against fitting the
templates, not against the author's idea of what requests look like; real traffic will be harder than this.
"""


def make_split(split: str, data_dir: Path, per_kind: int, seed: int) -> list[Example]:
    """The labelled requests of one split; the same arguments give the same requests."""
    from benchmarks import request_kind_dev, request_kind_heldout

    module = request_kind_dev if split == "dev" else request_kind_heldout
    return build(module.families(Sources(data_dir)), per_kind, seed)


def run(examples: list[Example]) -> tuple[list[RequestKind], np.ndarray]:
    """Each example's classification and the seconds it took (after one untimed warm-up pass)."""
    for example in examples[:50]:
        classify(example.messages, example.tools, tool_choice=example.tool_choice)
    results, seconds = [], []
    for example in examples:
        start = time.perf_counter()
        results.append(classify(example.messages, example.tools, tool_choice=example.tool_choice))
        seconds.append(time.perf_counter() - start)
    return results, np.asarray(seconds)


def confusion(pairs: np.ndarray) -> np.ndarray:
    """Counts by (true kind, predicted kind), both indexed by ``KINDS``."""
    matrix = np.zeros((len(KINDS), len(KINDS)), dtype=int)
    np.add.at(matrix, (pairs[:, 0], pairs[:, 1]), 1)
    return matrix


def _column_is(column: int, k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rows: rows[:, column] == k


def _rate(condition: Callable[[np.ndarray], np.ndarray], among: Callable[[np.ndarray], np.ndarray]):
    def statistic(rows: np.ndarray) -> float:
        base = among(rows)
        return float(condition(rows)[base].mean()) if base.any() else float("nan")

    return statistic


def metrics(pairs: np.ndarray, seed: int) -> dict[str, tuple[float, float, float]]:
    """Per-kind precision and recall, accuracy and the factual->non-factual rate, each with its interval."""
    found: dict[str, Callable[[np.ndarray], float]] = {"accuracy": lambda r: float((r[:, 0] == r[:, 1]).mean())}
    for k, kind in enumerate(KINDS):
        hit, said = _column_is(0, k), _column_is(1, k)
        found[f"precision {kind}"] = _rate(hit, said)
        found[f"recall {kind}"] = _rate(said, hit)
    factual, non_factual = KINDS.index("factual"), KINDS.index("non_factual")
    found["factual passed as non_factual"] = _rate(_column_is(1, non_factual), _column_is(0, factual))
    out = {}
    for name, statistic in found.items():
        low, high = bootstrap_interval(statistic, pairs, n_resamples=N_RESAMPLES, seed=seed)
        out[name] = (statistic(pairs), low, high)
    return out


def report(examples: list[Example], results: list[RequestKind], seconds: np.ndarray, args: argparse.Namespace) -> str:
    """The Markdown results page."""
    pairs = np.array([(KINDS.index(e.kind), KINDS.index(r.kind)) for e, r in zip(examples, results, strict=True)])
    matrix = confusion(pairs)
    lines = [
        "# Request kinds: which requests the gate can assess",
        "",
        f"Command: `python -m benchmarks.request_kinds --split {args.split} --per-kind {args.per_kind}"
        f" --seed {args.seed}{' --write' if args.write else ''}` (data: the shared datasets folder).",
        f"Split: **{args.split}**, {len(examples)} requests ({args.per_kind} per kind), seed {args.seed}; "
        f"intervals: 95% percentile bootstrap over requests, {N_RESAMPLES} resamples, seed {args.seed}.",
        f"Machine: {machine_description()}.",
        "",
        HOW_BUILT.rstrip(),
        "",
        "## Confusion matrix (rows: true kind, columns: predicted)",
        "",
        "| true \\ predicted | " + " | ".join(KINDS) + " |",
        "|---|" + "---:|" * len(KINDS),
    ]
    lines += [f"| {kind} | " + " | ".join(str(v) for v in matrix[k]) + " |" for k, kind in enumerate(KINDS)]
    lines += ["", "## Precision and recall", "", "| metric | value | 95% interval |", "|---|---:|---|"]
    for name, (value, low, high) in metrics(pairs, args.seed).items():
        lines.append(f"| {name} | {value:.3f} | [{low:.3f}, {high:.3f}] |")
    lines += ["", "## Per family", "", "| family | n | correct | predicted as |", "|---|---:|---:|---|"]
    by_family: dict[str, Counter[str]] = {}
    for example, result in zip(examples, results, strict=True):
        by_family.setdefault(example.family, Counter())[result.kind] += 1
    for family, counts in sorted(by_family.items()):
        n, right = sum(counts.values()), counts[family.split("/")[0]]
        lines.append(f"| {family} | {n} | {right / n:.2f} | {', '.join(f'{k} {v}' for k, v in counts.most_common())} |")
    micro = seconds * 1e6
    lines += [
        "",
        "## Time per request",
        "",
        f"classify() alone, one process, after a warm-up: median {np.median(micro):.0f} us, mean {micro.mean():.0f}"
        f" us, 99th percentile {np.percentile(micro, 99):.0f} us, max {micro.max():.0f} us over {len(micro)} requests"
        " (no LLM call; regular expressions only).",
        "",
        "## Rules that fired",
        "",
        ", ".join(f"{rule} {n}" for rule, n in Counter(r.rule for r in results).most_common()),
        "",
        "## Misclassified requests",
        "",
        *error_lines(examples, results, SHOWN_ERRORS),
    ]
    return "\n".join(lines) + "\n"


def error_lines(examples: list[Example], results: list[RequestKind], limit: int) -> list[str]:
    """Markdown bullets for the first ``limit`` misclassified requests: family, prediction, rule, last turn."""
    errors = [(e, r) for e, r in zip(examples, results, strict=True) if e.kind != r.kind]
    out = []
    for example, result in errors[:limit]:
        last = next(m for m in reversed(example.messages) if m["role"] in ("user", "tool"))
        text = " ".join(str(last["content"]).split())
        out.append(f"- {example.family} -> **{result.kind}** ({result.rule}): `{text[:160]}`")
    return out + ([f"- ... and {len(errors) - limit} more"] if len(errors) > limit else [])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)} (test split)")
    args = parser.parse_args(argv)
    if args.write and args.split != "test":
        parser.error("--write reports the test split")
    examples = make_split(args.split, find_data_dir(args.data_dir), args.per_kind, args.seed)
    results, seconds = run(examples)
    text = report(examples, results, seconds, args)
    if args.write:
        RESULTS.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
