"""Is a follow-up judged as well as the question alone? ``python -m benchmarks.two_turn``.

Each held-out question is asked three ways through the shipped gate (``Gate.assess``, every signal, the
full stage's fused probability), and each answer is graded against the gold aliases:

- ``single``: the question alone, as the artifact was fitted;
- ``two_turn``: a two-turn conversation; turn one introduces the question's rarest concept ("I have a
  question about Riven." / "Sure. What would you like to know about Riven?"), turn two is the question with
  that concept replaced by a pronoun ("What was the predecessor to it?");
- ``two_turn_last_message``: the same conversation read the way the gate read it before conversations were
  resolved: the signals see the last message alone (the primary answer still sees the conversation).

Questions: the artifact's test part (a hash of seed and id; nothing was fitted or chosen on it) of the
collection cache, every question the model answered correctly there and three times as many wrong ones
(seeded), so that the AUROC has enough positives; all three forms share the questions, and the comparison is
paired. Rows are cached per shard (``--shard i/k``), so a stopped run resumes; ``--report`` writes the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from calibration.artifact import load_artifact
from calibration.fitting import split_rows
from calibration.metrics import auroc
from estimators.concepts import find_concepts
from gate.backends.embedded.local import LocalLLM
from gate.concept_cache import MemoryConceptCache
from gate.conversation import Conversation
from gate.datasets.grading import is_correct
from gate.offline.signal_cache import read_cache
from gate.pipeline import Gate
from gate.suite import DEFAULT_SUITE

ARTIFACT = Path("gate/data/gemma-3-270m.calibration.json")
FORMS = ("single", "two_turn", "two_turn_last_message")
WRONG_PER_RIGHT = 3
SIGNALS = ("familiarity", "logprob_min", "consistency")


class LastMessageGate(Gate):
    """The gate as it read conversations before: the signals see the last message alone."""

    def _question(self, conversation: Conversation) -> str:
        return conversation.question

    def _signal_messages(self, conversation: Conversation) -> None:
        return None


def two_turn(question: str) -> list[dict[str, str]] | None:
    """The two-turn form of ``question``, or ``None`` when it names no concept to refer back to."""
    for concept in find_concepts(question):
        # a named entity only: a rare lower-case word ("eavery", a typo) is not something one refers back to
        if concept.kind == "term" or not concept.text[:1].isupper() or concept.text not in question:
            continue
        pattern = re.compile(r"\b" + re.escape(concept.text) + r"\b('s|’s)?")
        follow_up = pattern.sub(lambda m: "its" if m.group(1) else "it", question, count=1)
        follow_up = follow_up[:1].upper() + follow_up[1:]
        return [
            {"role": "user", "content": f"I have a question about {concept.text}."},
            {"role": "assistant", "content": f"Sure. What would you like to know about {concept.text}?"},
            {"role": "user", "content": follow_up},
        ]
    return None


def chosen_rows(cache: Path, seed: int) -> list[Any]:
    _, rows = read_cache(cache)
    artifact = load_artifact(ARTIFACT)
    test = split_rows([r.id for r in rows], seed=artifact.data.get("split_seed", 0)) == "test"
    held = [row for row, t in zip(rows, test, strict=True) if t and two_turn(row.question) is not None]
    right = [row for row in held if row.correct]
    wrong = [row for row in held if not row.correct]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(wrong), size=min(len(wrong), WRONG_PER_RIGHT * len(right)), replace=False)
    chosen = right + [wrong[i] for i in sorted(picked)]
    return sorted(chosen, key=lambda row: row.id)


async def collect(rows: list[Any], out: Path) -> None:
    done = {json.loads(line)["id"] for line in out.read_text().splitlines()} if out.exists() else set()
    llm = LocalLLM(n_threads=1)
    artifact = load_artifact(ARTIFACT)
    cache = MemoryConceptCache()
    gates = {
        "new": Gate(llm, artifact, suite=DEFAULT_SUITE, concurrent_signals=False, concept_cache=cache),
        "old": LastMessageGate(llm, artifact, suite=DEFAULT_SUITE, concurrent_signals=False, concept_cache=cache),
    }
    started = time.perf_counter()
    try:
        with out.open("a", encoding="utf-8") as sink:
            for count, row in enumerate([r for r in rows if r.id not in done], start=1):
                messages = two_turn(row.question)
                prompts = {"single": ("new", row.question), "two_turn": ("new", messages),
                           "two_turn_last_message": ("old", messages)}
                record: dict[str, Any] = {"id": row.id, "dataset": row.dataset, "follow_up": messages[-1]["content"]}
                for form, (which, prompt) in prompts.items():
                    assessment = await gates[which].assess(prompt, cascade=False, precheck=False, assess_all=True)
                    record[form] = {
                        "answer": assessment.answer,
                        "correct": is_correct(assessment.answer or "", row.gold),
                        "probability": assessment.probability,
                        "signals": assessment.confidences(),
                        "calls": assessment.gate_cost.calls,
                    }
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                if count % 10 == 0:
                    print(f"{out.name}: {count} rows, {(time.perf_counter() - started) / count:.1f} s/row", flush=True)
    finally:
        llm.process().close()


def report(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def scores(form: str, key: str) -> np.ndarray:
        values = [r[form]["probability"] if key == "fused" else r[form]["signals"].get(key) for r in records]
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    labels = {form: np.array([r[form]["correct"] for r in records], dtype=bool) for form in FORMS}

    def auc_of(form: str, key: str, idx: np.ndarray) -> float:
        y, s = labels[form][idx], scores(form, key)[idx]
        keep = ~np.isnan(s)
        return auroc(y[keep], s[keep]) if 0 < y[keep].sum() < keep.sum() else np.nan

    n = len(records)
    everything = np.arange(n)
    lines = [
        "# Follow-up questions: two-turn conversations against the question alone",
        "",
        f"- Command: `python -m benchmarks.two_turn --cache {args.cache} --shard i/2` (two processes), then "
        "`python -m benchmarks.two_turn --report`",
        f"- Machine: {machine_description()}",
        f"- Packages: {package_versions(['llama-cpp-python', 'numpy'])}",
        f"- Artifact: `{ARTIFACT}` applied as shipped (`{load_artifact(ARTIFACT).id}`), every signal computed "
        "(`cascade=False`), no precheck abstention; the fused probability is the full stage's.",
        f"- Questions: {n} from the artifact's test part (nothing fitted or chosen on it): every one the model "
        f"answered correctly in the collection and {WRONG_PER_RIGHT} wrong ones per right one (seed {args.seed}); "
        "each answer is graded again in each form. Intervals: 95% paired bootstrap over questions "
        "(2,000 resamples).",
        "- Two-turn form: turn one names the question's rarest named concept (questions with none are left "
        "out), turn two is the question with that concept replaced by 'it'/'its'. `two_turn_last_message` is "
        "how the gate read it before this change (the signals saw the last message alone).",
        "",
        "| form | correct | fused AUROC [95% CI] | " + " | ".join(f"{k} AUROC" for k in SIGNALS) + " | gate calls |",
        "|---|---|---|" + "---|" * len(SIGNALS) + "---|",
    ]
    for form in FORMS:
        low, high = bootstrap_interval(lambda idx, f=form: auc_of(f, "fused", idx), everything)
        signal_cells = " | ".join(f"{auc_of(form, key, everything):.3f}" for key in SIGNALS)
        calls = np.mean([r[form]["calls"] for r in records])
        lines.append(
            f"| {form} | {labels[form].sum()} of {n} | {auc_of(form, 'fused', everything):.3f} [{low:.3f}, {high:.3f}]"
            f" | {signal_cells} | {calls:.2f} |"
        )
    lines += ["", "| gap in fused AUROC (paired) | value | 95% CI | target |", "|---|---|---|---|"]
    for form in FORMS[1:]:
        def gap(idx: np.ndarray, f: str = form) -> float:
            return auc_of(f, "fused", idx) - auc_of("single", "fused", idx)

        low, high = bootstrap_interval(gap, everything)
        lines.append(f"| {form} - single | {gap(everything):+.3f} | [{low:+.3f}, {high:+.3f}] | within 0.03 |")
    lines += [
        "",
        "Reading: resolving the question closes most of the gap the old reading left, but the target is not met "
        "on this model. What is left is not in how the gate reads the conversation: the token probability, "
        "which the gate only reads off the primary answer and which the change cannot touch, loses as much "
        "(compare logprob_min single vs two_turn), and the 270M model answers the follow-up form worse (fewer "
        "correct). Gate calls: the familiarity of a concept is cached across forms (`MemoryConceptCache`, as "
        "in serving), so the forms after `single` mostly find it cached; the old reading scored the follow-up's "
        "own concepts, which were new.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("build/collect/core.signals.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("build/two_turn"))
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        records = [json.loads(line) for path in sorted(args.out.glob("rows-*.jsonl")) for line in path.open()]
        text = report(sorted(records, key=lambda r: r["id"]), args)
        Path("benchmarks/results/two_turn.md").write_text(text, encoding="utf-8")
        print(text)
        return
    logging.basicConfig(level=logging.WARNING)
    index, count = (int(part) for part in args.shard.split("/"))
    rows = chosen_rows(args.cache, args.seed)[index::count]
    asyncio.run(collect(rows, args.out / f"rows-{index}of{count}.jsonl"))


if __name__ == "__main__":
    main()
