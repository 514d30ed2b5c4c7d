"""Is a follow-up judged as well as the question alone? ``python -m benchmarks.two_turn``.

Each held-out question is asked three ways through the shipped gate (``Gate.assess``, every signal, the
full stage's fused probability), and each answer is graded against the gold aliases:

- ``single``: the question alone, as the artifact was fitted;
- ``two_turn``: a two-turn conversation; turn one introduces the question's rarest named concept ("I have a
  question about Riven." / "Sure. What would you like to know about Riven?"), turn two is the question with
  that concept replaced by "it" ("What was the predecessor to it?"), only where "it" can stand there
  (``pronoun_fits``: not "The it was a type of what?");
- ``two_turn_last_message``: the same conversation read the way the gate read it before conversations were
  resolved: the signals see the last message alone (the primary answer still sees the conversation).

Questions nothing was fitted or chosen on: the artifact's test part of the cost study's 3,600 (a hash of seed
and id) and the next questions of three sets past that draw (``BEYOND_THE_DRAW``). A screening pass grades the
model's answer to each question alone (``--screen --shard i/k``); then every question it answered right and
three times as many wrong ones (seeded) are asked the three ways, so that the AUROC has enough positives; the
three forms share the questions, and the comparison is paired. Everything is cached per shard, so a stopped
run resumes; ``--report`` writes the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.collect import DATASETS
from benchmarks.common import bootstrap_interval, machine_description, package_versions
from calibration.artifact import load_artifact
from calibration.fitting import split_rows
from calibration.metrics import auroc
from estimators.concepts import find_concepts
from gate.backends.embedded.local import LocalLLM
from gate.concept_cache import MemoryConceptCache
from gate.conversation import Conversation
from gate.datasets.grading import is_correct
from gate.offline.collect import sample_items
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


_DETERMINERS = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "its",
        "his",
        "her",
        "their",
        "our",
        "which",
        "what",
        "whose",
        "first",
        "last",
        "only",
        "winning",
    ]
)
_TITLE_NOUNS = frozenset(
    [
        "song",
        "film",
        "movie",
        "album",
        "book",
        "novel",
        "play",
        "musical",
        "opera",
        "poem",
        "painting",
        "show",
        "series",
        "programme",
        "program",
        "ship",
        "band",
        "group",
        "character",
        "team",
        "club",
        "word",
        "magazine",
        "newspaper",
        "brand",
        "company",
        "river",
        "city",
        "town",
        "country",
        "state",
        "island",
        "king",
        "queen",
        "president",
        "prince",
        "princess",
        "saint",
        "sir",
        "lord",
        "lady",
        "general",
        "captain",
        "dr",
        "mr",
        "mrs",
        "ms",
    ]
)
_TITLE_SUFFIXES = ("er", "or", "ist", "ian", "ess")  # singer, actor, novelist, musician, actress
_FUNCTION_WORDS = frozenset(
    [
        "is",
        "was",
        "were",
        "are",
        "be",
        "been",
        "has",
        "have",
        "had",
        "did",
        "does",
        "do",
        "will",
        "would",
        "can",
        "could",
        "and",
        "or",
        "but",
        "in",
        "on",
        "at",
        "of",
        "to",
        "for",
        "from",
        "with",
        "by",
        "about",
        "into",
        "after",
        "before",
        "during",
        "since",
        "than",
        "as",
        "when",
        "where",
        "who",
        "whom",
        "which",
        "that",
        "while",
    ]
)


def pronoun_fits(question: str, start: int, end: int) -> bool:
    """Whether "it" can stand for ``question[start:end]`` and leave a question a person would ask.

    The earlier construction replaced the concept wherever it stood, which wrote questions no one types ("The it
    was a type of what?", "sunk by a it submarine", "Which country does musician it come from?"), and the
    model's worse answers to them were counted against the gate. Kept only: a concept after the start, a
    number or a lower-case word that is neither a determiner ("the X") nor a title ("musician X", "the song
    X"), and followed by the end, punctuation other than a comma, "'s", or a function word ("X was ...",
    "... of X in 1990"), so that it is neither a modifier ("X citizen"), part of a longer name ("Ali v X",
    "X & Stripes") nor an item of a list. Rules written from development questions, before any rerun.
    """
    before = question[:start].split()
    previous = before[-1] if before else ""
    if previous and (
        previous.lower() in _DETERMINERS
        or previous.lower() in _TITLE_NOUNS
        or (len(previous) > 4 and previous.lower().endswith(_TITLE_SUFFIXES))
        or not (previous.islower() or previous.isdigit() or (len(before) == 1 and previous[:1].isupper()))
    ):
        return False
    if previous.lower() in ("and", "or") and len(before) > 1 and before[-2].endswith(","):
        return False  # the last item of a list: "bordered by Benin, Niger, and X"
    rest = question[end:]
    if re.match(r"(?:'s|’s)\s", rest):
        return True  # "X's address" -> "its address"
    if re.match(r"(?:'s|’s)?(?:[?!;:]|\.(?!\s*[a-z])|\s*$)", rest):
        return True
    following = re.match(r"(?:'s|’s)?\s+([a-z]+)\b(\s+[A-Z])?", rest)
    if following is None or following.group(1) not in _FUNCTION_WORDS:
        return False
    return not (following.group(1) in ("and", "or") and following.group(2))  # "Mork and Mindy": one name


def two_turn(question: str) -> list[dict[str, str]] | None:
    """The two-turn form of ``question``, or ``None`` when it names no concept "it" can stand for."""
    for concept in find_concepts(question):
        # a named entity only: a rare lower-case word ("eavery", a typo) is not something one refers back to
        if concept.kind == "term" or not concept.text[:1].isupper() or concept.text not in question:
            continue
        at = re.search(r"\b" + re.escape(concept.text) + r"\b", question)
        if at is None or not pronoun_fits(question, at.start(), at.end()):
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


@dataclass(frozen=True)
class Question:
    id: str
    dataset: str
    question: str
    gold: tuple[str, ...]


BEYOND_THE_DRAW = {"trivia": 1200, "popqa": 500, "halueval": 600}
"""Questions past the cost study's draw in the same seeded order: never collected, fitted or chosen on."""


def held_out_questions(seed: int) -> list[Question]:
    """Questions nothing was fitted on, each with a natural follow-up form: the test part of the cost study's
    3,600 (``benchmarks.collect``, the artifact's split), and the next questions of three sets past that draw."""
    split_seed = load_artifact(ARTIFACT).data.get("split_seed", 0)
    drawn = sample_items(DATASETS, limit=None, seed=seed)
    test = split_rows([item.id for _, item in drawn], seed=split_seed) == "test"
    held = [pair for pair, held_out in zip(drawn, test, strict=True) if held_out]
    counts = {entry.partition(":")[0]: int(entry.partition(":")[2]) for entry in DATASETS}
    for name, extra in BEYOND_THE_DRAW.items():
        held += sample_items([f"{name}:{counts[name] + extra}"], limit=None, seed=seed)[counts[name] :]
    return [
        Question(item.id, dataset, item.question, tuple(item.answers))
        for dataset, item in held
        if two_turn(item.question) is not None
    ]


async def screen(questions: list[Question], out: Path) -> None:
    """Grade the model's greedy answer to each question alone (the gate's own answer call), resumably."""
    done = set(_screened(out.parent))
    llm = LocalLLM(n_threads=1)
    try:
        with out.open("a", encoding="utf-8") as sink:
            for question in [q for q in questions if q.id not in done]:
                [answer] = await llm.generate([{"role": "user", "content": question.question}], max_tokens=64)
                correct = is_correct(answer.text.strip(), question.gold)
                sink.write(json.dumps({"id": question.id, "correct": correct}) + "\n")
                sink.flush()
    finally:
        llm.process().close()


def _screened(folder: Path) -> dict[str, bool]:
    """Whether the model answered each screened question right alone, from every shard's file."""
    return {
        record["id"]: record["correct"]
        for path in sorted(folder.glob("screen-*.jsonl"))
        for record in map(json.loads, path.read_text().splitlines())
    }


def chosen_rows(questions: list[Question], screened: dict[str, bool], seed: int) -> list[Question]:
    """Every question the model answered right alone, and ``WRONG_PER_RIGHT`` wrong ones per right one."""
    right = [q for q in questions if screened[q.id]]
    wrong = [q for q in questions if not screened[q.id]]
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
                prompts = {
                    "single": ("new", row.question),
                    "two_turn": ("new", messages),
                    "two_turn_last_message": ("old", messages),
                }
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
        "- Command: `python -m benchmarks.two_turn --screen --shard i/2`, then `python -m benchmarks.two_turn "
        "--shard i/2` (two processes each), then `python -m benchmarks.two_turn --report`",
        f"- Machine: {machine_description()}",
        f"- Packages: {package_versions(['llama-cpp-python', 'numpy'])}",
        f"- Artifact: `{ARTIFACT}` applied as shipped (`{load_artifact(ARTIFACT).id}`), every signal computed "
        "(`cascade=False`), no precheck abstention; the fused probability is the full stage's.",
        f"- Questions: {n} that nothing was fitted or chosen on (the artifact's test part of the cost study's "
        "draw, and questions past that draw: "
        + ", ".join(f"{name} {count}" for name, count in _by_set(records).items())
        + f"): every one the model answered right alone in the screening pass and {WRONG_PER_RIGHT} wrong ones "
        f"per right one (seed {args.seed}); each answer is graded again in each form. Intervals: 95% paired "
        "bootstrap over questions (2,000 resamples).",
        "- Two-turn form: turn one names the question's rarest named concept, turn two is the question with that "
        "concept replaced by 'it'/'its', only where a pronoun can stand there (`pronoun_fits`); questions without "
        "such a concept are left out. `two_turn_last_message` is how the gate read it before conversations were "
        "resolved (the signals saw the last message alone).",
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
    gaps = {}
    for form in FORMS[1:]:

        def gap(idx: np.ndarray, f: str = form) -> float:
            return auc_of(f, "fused", idx) - auc_of("single", "fused", idx)

        gaps[form] = (gap(everything), *bootstrap_interval(gap, everything))
        value, low, high = gaps[form]
        lines.append(f"| {form} - single | {value:+.3f} | [{low:+.3f}, {high:+.3f}] | within 0.03 |")
    value, low, high = gaps["two_turn"]
    within = "within" if abs(value) <= 0.03 else "outside"
    confirmed = (
        "and so is the whole interval"
        if low >= -0.03 and high <= 0.03
        else f"but the interval, with {labels['two_turn'].sum()} right two-turn answers, is wider than the tolerance: "
        "it finds no gap rather than proving one smaller than 0.03"
    )
    lines += [
        "",
        f"Reading: the gap is {value:+.3f}, {within} the 0.03 target on the point estimate, {confirmed}. Read the "
        "old way (the last message alone) the samples answer a question without its antecedent, and consistency "
        "loses most (compare its AUROC across the forms). The model itself answers the follow-up form worse "
        "(fewer correct), which the gate cannot change. Gate calls: the familiarity of a concept is cached across "
        "forms (`MemoryConceptCache`, as in serving), so the forms after `single` mostly find it cached.",
        "",
        "An earlier construction replaced the concept wherever it stood and measured -0.078 [-0.181, +0.028] on "
        "136 test-part questions (34 right); 8 of 15 of its follow-ups looked at (development questions) were not "
        "questions a person would type "
        '("The it was a type of what?", "sunk by a it submarine"), and the model\'s worse answers to them were '
        "counted against the gate. The construction changed to `pronoun_fits` (rules written from development "
        "questions) and the question pool grew past the cost study's draw; the table above is the first complete "
        "run with it (one start was stopped after 20 rows, before any result was read, to add the possessive and "
        "list rules).",
    ]
    return "\n".join(lines) + "\n"


def _by_set(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["dataset"]] = counts.get(record["dataset"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/two_turn"))
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--screen", action="store_true", help="first: grade the answers alone")
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
    questions = held_out_questions(args.seed)
    if args.screen:
        asyncio.run(screen(questions[index::count], args.out / f"screen-{index}of{count}.jsonl"))
        return
    rows = chosen_rows(questions, _screened(args.out), args.seed)[index::count]
    asyncio.run(collect(rows, args.out / f"rows-{index}of{count}.jsonl"))


if __name__ == "__main__":
    main()
