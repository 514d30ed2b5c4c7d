"""The embedded model across llama.cpp builds, kernel paths and process isolation: speed and stability.

Three measurements, each saved apart, then one report:

1. ``python -m benchmarks.kernel_paths speed --build native`` (and again with ``--build portable`` after
   installing the other llama-cpp-python build): seconds per greedy answer (with top-5 log-probs, as the
   gate asks for its answer) and per 5-sample request, for the model run in this process (the runner
   before issue 14), in its child process (now), and in its child process with extra buffer types off
   (the AMX fallback). Saves ``kernel_paths/speed-<build>.json`` (answers and log-probs included, so two
   builds can be compared answer by answer).
2. Signal caches for the same questions on two kernel paths, made with the real CLI, e.g.::

       GATE_LOCAL_EXTRA_BUFFERS=on  gate calibrate -d efficientqa --limit 100 --collect-only --cache on.jsonl
       GATE_LOCAL_EXTRA_BUFFERS=off gate calibrate -d efficientqa --limit 100 --collect-only --cache off.jsonl

3. ``python -m benchmarks.kernel_paths threads``: the same greedy answers with 1 and 2 llama.cpp threads?
4. ``python -m benchmarks.kernel_paths report --caches on.jsonl off.jsonl`` writes ``kernel_paths.md``:
   the speed tables, and between the two caches the share of identical greedy answers, the Spearman
   correlation of each signal, and the agreement of the shipped artifact's decisions.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from calibration.artifact import load_artifact
from estimators.base import Generation
from gate.backends.embedded.cpu import load_llama, system_info
from gate.backends.embedded.engine import LlamaEngine
from gate.backends.embedded.local import LocalLLM, model_file
from gate.backends.embedded.prompt_format import QA_STOP, render_chat
from gate.datasets import load_trivia
from gate.factory import SHIPPED_ARTIFACT
from gate.offline.calibrate import cascade_outcomes, matrix
from gate.offline.signal_cache import CachedRow, read_cache

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "kernel_paths"
REPORT = RESULTS / "kernel_paths.md"
MAX_TOKENS = 16
SEED = 0
MODES = {"greedy + logprobs (top 5)": {"logprobs": 5}, "5 samples, T=1": {"n": 5, "temperature": 1.0, "seed": SEED}}
RUNNERS = ("in this process (before)", "child process (now)", "child process, extra buffers off")

Generate = Callable[..., Awaitable[list[Generation]]]


def in_process_generate(n_threads: int) -> Generate:
    """The embedded model as it ran before issue 14: in the caller's process, on one worker thread."""
    engine = LlamaEngine(load_llama(str(model_file()), n_ctx=2048, n_threads=n_threads, extra_buffers=True))
    worker = ThreadPoolExecutor(1)

    async def generate(messages: list[dict[str, str]], **kwargs: Any) -> list[Generation]:
        call = functools.partial(
            engine.generate,
            render_chat(messages),
            n=kwargs.get("n", 1),
            temperature=kwargs.get("temperature", 0.0),
            max_tokens=kwargs["max_tokens"],
            top_logprobs=kwargs.get("logprobs"),
            stop=QA_STOP,
            seed=kwargs.get("seed"),
        )
        generations = await asyncio.get_running_loop().run_in_executor(worker, call)
        return [g.model_copy(update={"text": g.text.strip()}) for g in generations]

    return generate


async def time_runner(generate: Generate, questions: Sequence[str]) -> dict[str, Any]:
    """Seconds per request for each mode, and the greedy answers with their log-probs."""
    await generate([{"role": "user", "content": "warm up"}], max_tokens=4)
    out: dict[str, Any] = {"seconds": {}, "answers": [], "logprobs": []}
    for name, kwargs in MODES.items():  # one pass per mode: every request finds the same cache state
        seconds = []
        for question in questions:
            started = time.perf_counter()
            generations = await generate([{"role": "user", "content": question}], max_tokens=MAX_TOKENS, **kwargs)
            seconds.append(time.perf_counter() - started)
            if "logprobs" in kwargs:
                out["answers"].append(generations[0].text)
                out["logprobs"].append(generations[0].logprobs)
        out["seconds"][name] = seconds
    return out


async def measure_speed(questions: Sequence[str]) -> dict[str, Any]:
    """Every runner on the installed build, one after the other (one model loaded at a time)."""
    threads = LocalLLM().n_threads
    runs = {RUNNERS[0]: await time_runner(in_process_generate(threads), questions)}
    for name, extra in zip(RUNNERS[1:], ("on", "off"), strict=True):
        llm = LocalLLM(extra_buffers=extra)
        await llm.load()
        runs[name] = await time_runner(functools.partial(llm.generate), questions)
        llm.process().close()
    return {"threads": threads, "runs": runs}


async def compare_threads(questions: Sequence[str], counts: Sequence[int]) -> dict[str, Any]:
    """Greedy answers and log-probs with each llama.cpp thread count (machines differ in cores)."""
    runs = {}
    for count in counts:
        llm = LocalLLM(n_threads=count)
        answers = [
            (await llm.generate([{"role": "user", "content": q}], max_tokens=MAX_TOKENS, logprobs=5))[0]
            for q in questions
        ]
        llm.process().close()
        runs[str(count)] = {"answers": [g.text for g in answers], "logprobs": [g.logprobs for g in answers]}
    return runs


# --- the report ---------------------------------------------------------------------------------------


def speed_lines(speeds: dict[str, dict[str, Any]]) -> list[str]:
    """One row per build, runner and mode: mean seconds with its interval, and the ratio to the old runner."""
    lines = [
        "| build | runner | mode | mean s/request | 95% CI | vs in-process, same build |",
        "|---|---|---|---|---|---|",
    ]
    for build, data in speeds.items():
        before = data["runs"][RUNNERS[0]]["seconds"]
        for runner in RUNNERS:
            for mode, values in data["runs"][runner]["seconds"].items():
                seconds = np.array(values)
                low, high = bootstrap_interval(lambda rows: rows.mean(), seconds)
                ratio = seconds.mean() / np.mean(before[mode])
                lines.append(
                    f"| {build} | {runner} | {mode} | {seconds.mean():.4f} | [{low:.4f}, {high:.4f}] | {ratio:.2f}x |"
                )
    return lines


def isolation_cost_lines(speeds: dict[str, dict[str, Any]]) -> list[str]:
    """What the child process adds per request: paired differences, in milliseconds."""
    lines = ["| build | mode | child - in-process, ms per request (mean) | 95% CI |", "|---|---|---|---|"]
    for build, data in speeds.items():
        for mode in MODES:
            before = np.array(data["runs"][RUNNERS[0]]["seconds"][mode])
            after = np.array(data["runs"][RUNNERS[1]]["seconds"][mode])
            diff = (after - before) * 1000
            low, high = bootstrap_interval(lambda rows: rows.mean(), diff)
            lines.append(f"| {build} | {mode} | {diff.mean():+.1f} | [{low:+.1f}, {high:+.1f}] |")
    return lines


def same_answers_lines(speeds: dict[str, dict[str, Any]]) -> list[str]:
    """Greedy answers and their log-probs, every runner and build against the first build's in-process run."""
    reference_build = next(iter(speeds))
    reference = speeds[reference_build]["runs"][RUNNERS[0]]
    lines = [
        f"| build | runner | identical answers vs {reference_build}, in-process | max abs log-prob difference |",
        "|---|---|---|---|",
    ]
    for build, data in speeds.items():
        for runner in RUNNERS:
            run = data["runs"][runner]
            same = [a == b for a, b in zip(run["answers"], reference["answers"], strict=True)]
            gaps = [
                max(abs(x - y) for x, y in zip(a, b, strict=True))
                for a, b, equal in zip(run["logprobs"], reference["logprobs"], same, strict=True)
                if equal and a
            ]
            lines.append(f"| {build} | {runner} | {sum(same)} of {len(same)} | {max(gaps, default=0.0):.2e} |")
    return lines


def thread_lines(runs: dict[str, Any]) -> list[str]:
    """Whether the thread count changes the numbers: each count against the first."""
    counts = list(runs)
    reference = runs[counts[0]]
    lines = [f"| threads | identical answers and log-probs vs {counts[0]} thread(s) |", "|---|---|"]
    for count in counts:
        mine = zip(runs[count]["answers"], runs[count]["logprobs"], strict=True)
        theirs = zip(reference["answers"], reference["logprobs"], strict=True)
        same = sum(a == b for a, b in zip(mine, theirs, strict=True))
        lines.append(f"| {count} | {same} of {len(reference['answers'])} |")
    return lines


def stability_lines(first: Path, second: Path) -> list[str]:
    """Between two caches of the same questions: answers, each signal's agreement, and the decisions."""
    rows_a, rows_b = _paired_rows(first, second)
    n = len(rows_a)
    same_answer = np.array([a.answer == b.answer for a, b in zip(rows_a, rows_b, strict=True)])
    correct_a = np.array([a.correct for a in rows_a])
    correct_b = np.array([b.correct for b in rows_b])
    lines = [
        f"- Questions: {n} (paired by id); correct answers: {correct_a.sum()} ({first.name}), "
        f"{correct_b.sum()} ({second.name}).",
        f"- Identical greedy answers: {same_answer.sum()} of {n} ({same_answer.mean():.0%}); "
        f"same grade (right/wrong): {(correct_a == correct_b).sum()} of {n}.",
        "",
        "| signal | Spearman between the paths | 95% CI | rows with both | mean abs difference |",
        "|---|---|---|---|---|",
    ]
    keys = sorted(set().union(*(row.signals for row in rows_a)))
    a_values, b_values = matrix(rows_a, keys), matrix(rows_b, keys)
    for index, key in enumerate(keys):
        both = ~np.isnan(a_values[:, index]) & ~np.isnan(b_values[:, index])
        pairs = np.column_stack([a_values[both, index], b_values[both, index]])
        if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
            lines.append(f"| {key} | - | - | {len(pairs)} | - |")
            continue
        rho = spearmanr(pairs[:, 0], pairs[:, 1]).statistic
        low, high = bootstrap_interval(lambda rows: spearmanr(rows[:, 0], rows[:, 1]).statistic, pairs)
        gap = np.abs(pairs[:, 0] - pairs[:, 1]).mean()
        lines.append(f"| {key} | {rho:.3f} | [{low:.3f}, {high:.3f}] | {len(pairs)} | {gap:.4f} |")
    lines += ["", *_decision_lines(rows_a, rows_b)]
    return lines


def _decision_lines(rows_a: list[CachedRow], rows_b: list[CachedRow]) -> list[str]:
    artifact = load_artifact(SHIPPED_ARTIFACT)
    prob_a, decision_a, stage_a = cascade_outcomes(artifact, rows_a)
    prob_b, decision_b, stage_b = cascade_outcomes(artifact, rows_b)
    same = decision_a == decision_b
    mix = {name: (int((decision_a == name).sum()), int((decision_b == name).sum())) for name in ("answer", "hedge")}
    rho = spearmanr(prob_a, prob_b).statistic
    changed = ", ".join(f"{a} -> {b}" for a, b in zip(decision_a[~same], decision_b[~same], strict=True))
    return [
        f"Decisions of the shipped artifact (`{artifact.id}`), default cascade:",
        f"- same decision: {same.sum()} of {len(same)} ({same.mean():.0%}); same deciding stage: "
        f"{(stage_a == stage_b).sum()} of {len(same)}; Spearman of the probability {rho:.3f}.",
        f"- answered {mix['answer'][0]} vs {mix['answer'][1]}, hedged {mix['hedge'][0]} vs {mix['hedge'][1]}; "
        f"changed: {changed or 'none'}.",
    ]


def _paired_rows(first: Path, second: Path) -> tuple[list[CachedRow], list[CachedRow]]:
    by_id = {row.id: row for row in read_cache(second)[1]}
    rows_a = [row for row in read_cache(first)[1] if row.id in by_id]
    return rows_a, [by_id[row.id] for row in rows_a]


def report(speeds: dict[str, dict[str, Any]], caches: Sequence[Path] | None) -> str:
    """The results file, in Markdown."""
    some = next(iter(speeds.values()))
    n_questions = len(some["runs"][RUNNERS[0]]["answers"])
    lines = [
        "# The embedded model across llama.cpp builds, kernel paths and process isolation",
        "",
        f"- Machine: {machine_description()}; {some['threads']} llama.cpp thread(s)",
        f"- Packages: {package_versions(['llama-cpp-python', 'numpy'])}",
        *(f"- Build `{build}`: {data['system_info']}" for build, data in speeds.items()),
        f"- Speed: the first {n_questions} questions of `trivia_dev.txt`, max {MAX_TOKENS} new tokens, sampling "
        f"seed {SEED}; one pass per mode and runner; 95% bootstrap intervals over questions.",
        "- Commands: see the module docstring of `benchmarks/kernel_paths.py`.",
        "",
        "## Speed",
        "",
        *speed_lines(speeds),
        "",
        "## What running the model in a child process costs",
        "",
        *isolation_cost_lines(speeds),
        "",
        "## The same greedy answers?",
        "",
        *same_answers_lines(speeds),
    ]
    threads = RUNS / "threads.json"
    if threads.exists():
        lines += ["", "## Thread counts (the same build)", "", *thread_lines(json.loads(threads.read_text()))]
    if caches:
        lines += [
            "",
            f"## Two kernel paths on {caches[0].name} and {caches[1].name}: signals and decisions",
            "",
            *stability_lines(caches[0], caches[1]),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser("speed", help="time the installed build's runners")
    speed.add_argument("--build", required=True, help="a name for the installed llama-cpp-python build")
    speed.add_argument("--questions", type=int, default=50)
    threads = commands.add_parser("threads", help="compare greedy answers across llama.cpp thread counts")
    threads.add_argument("--counts", type=int, nargs="+", default=[1, 2])
    threads.add_argument("--questions", type=int, default=30)
    done = commands.add_parser("report", help="write kernel_paths.md from the saved runs")
    done.add_argument("--caches", type=Path, nargs=2, help="two signal caches of the same questions")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.command == "speed":
        questions = [item.question for item in load_trivia(limit=args.questions)]
        result = asyncio.run(measure_speed(questions)) | {"system_info": system_info()}
        (RUNS / f"speed-{args.build}.json").write_text(json.dumps(result, indent=1))
        return
    if args.command == "threads":
        questions = [item.question for item in load_trivia(limit=args.questions)]
        (RUNS / "threads.json").write_text(json.dumps(asyncio.run(compare_threads(questions, args.counts)), indent=1))
        return
    speeds = {path.stem.removeprefix("speed-"): json.loads(path.read_text()) for path in sorted(RUNS.glob("speed-*"))}
    REPORT.write_text(report(speeds, args.caches))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
