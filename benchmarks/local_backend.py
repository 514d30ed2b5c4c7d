"""Speed of the embedded backend: greedy answers with and without log-probs, and 5-sample requests.

Run: ``.venv/bin/python -m benchmarks.local_backend [--questions 50] [--baseline-questions 10]``
Writes ``benchmarks/results/local_backend.md`` (``--out`` elsewhere). Targets: log-probs cost at most 1.3x the
plain answer (issue 2); 5 samples at T=1, decoded as one batch, cost at most 1.5x one answer (the batched
sampling issue; decoded one after the other, the target was 3x). The 5 samples are timed both ways, the serial
way in a second model process (``LocalLLM(sample_decoding="serial")``). The baseline is llama-cpp-python's own
log-probs (``logits_all=True``) on a few questions, to show what computing them ourselves saves.

Then, with the model in this process: what one ``llama_decode`` costs by its number of output rows (the evidence
for padding odd steps, ``_Padding`` in the engine), and the gate's samples after the answer against the same samples
without each of the engine's savings (padding, the disagreement stop, the top-k from chunk maxima, splitting small
steps), paired question by question.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from estimators.consistency import MIN_SAMPLE_TOKENS, Consistency
from gate.backends.embedded.engine import LlamaEngine, splits_small_steps
from gate.backends.embedded.local import LocalLLM, model_file
from gate.backends.embedded.prompt_format import QA_STOP, render_chat
from gate.datasets import load_trivia

RESULTS = Path(__file__).parent / "results" / "local_backend.md"
MAX_TOKENS = 16
SEED = 0


async def _time(llm: LocalLLM, messages: list[dict[str, str]], **kwargs: Any) -> tuple[float, int]:
    kwargs = {"max_tokens": MAX_TOKENS} | kwargs
    started = time.perf_counter()
    if "answer" in kwargs:  # samples that end as soon as they can no longer agree with it, as the gate draws them
        generations = await llm.generate_until_disagreeing(messages, **kwargs)
    else:
        generations = await llm.generate(messages, **kwargs)
    return time.perf_counter() - started, sum(g.usage.completion_tokens for g in generations)


MODES = (
    "greedy",
    "greedy + logprobs (top 5)",
    "5 samples, T=1 (batched)",
    "5 samples, T=1 (serial)",
    "5 samples after the answer, up to 32 tokens",
    "5 samples after the answer, fitted to it",
)
AFTER_ANSWER = MODES[-2:]
"""The order a gate runs them in: the answer (not timed), then the consistency samples of the same prompt, up to
the estimator's ``max_tokens`` or to the length it fits to that answer (``Consistency.sample_tokens``, and
a sample that can no longer agree with the answer ends there: ``ExactMatch.could_agree``)."""
ITS_ANSWER = f"{AFTER_ANSWER[1]}: its answer"
"""The answer the default samples follow, timed in the same pass: their paired denominator."""


async def measure(questions: list[str], n_threads: int | None) -> dict[str, np.ndarray]:
    """Seconds per request for each mode and question."""
    llm = LocalLLM(n_threads=n_threads)
    serial = LocalLLM(n_threads=n_threads, sample_decoding="serial")  # a second model process
    for each in (llm, serial):
        await each.load()
        await each.generate([{"role": "user", "content": "warm up"}], max_tokens=4)
    samples = {"n": 5, "temperature": 1.0, "seed": SEED}
    after_answer = samples | {"logprobs": 1, "max_tokens": Consistency().max_tokens}
    modes = dict(
        zip(
            MODES,
            [
                (llm, {}),
                (llm, {"logprobs": 5}),
                (llm, samples),
                (serial, samples),
                (llm, after_answer),
                (llm, after_answer),
            ],
            strict=True,
        )
    )
    seconds: dict[str, list[float]] = {name: [] for name in modes} | {ITS_ANSWER: []}
    tokens: dict[str, list[int]] = {name: [] for name in modes}
    # One pass per mode, so every request finds the same cache state (the previous question's prompt
    # blocks), rather than a later mode reusing the prompt an earlier mode just evaluated.
    for name, (model, kwargs) in modes.items():
        for question in questions:
            asked = kwargs
            if name in AFTER_ANSWER:
                started = time.perf_counter()
                [answer] = await model.generate(
                    [{"role": "user", "content": question}], max_tokens=MAX_TOKENS, logprobs=5
                )
                if name == AFTER_ANSWER[1]:  # the gate's default: its answer is the paired denominator
                    seconds[ITS_ANSWER].append(time.perf_counter() - started)
                    fitted = Consistency()
                    text = answer.text.strip()
                    asked = kwargs | {"max_tokens": fitted.sample_tokens(text), "answer": text}
            took, produced = await _time(model, [{"role": "user", "content": question}], **asked)
            seconds[name].append(took)
            tokens[name].append(produced)
    return {name: np.array(values) for name, values in seconds.items()} | {
        f"tokens: {name}": np.array(values) for name, values in tokens.items()
    }


ROW_COUNTS = tuple(range(1, 9))
ROW_REPEATS = 20


def _in_process_engine(threads: int) -> tuple[Any, Any]:
    """The model in this process and an engine on it, as the gate's child process loads them."""
    from gate.backends.embedded.cpu import build_features, cpu_flags, load_llama, system_info, use_extra_buffers

    extra = use_extra_buffers("auto", cpu=cpu_flags(), build=build_features(system_info()))
    model = load_llama(str(model_file()), n_ctx=2048, n_threads=threads, extra_buffers=extra)
    return model, LlamaEngine(model)


def measure_rows(threads: int) -> dict[tuple[int, bool], np.ndarray]:
    """Milliseconds to decode ``r`` tokens with logits for every one, for each ``r``: in one ``llama_decode``
    (key ``(r, False)``) and in ``r`` of them, one token each (key ``(r, True)``).

    Each token is the next one of its own sequence after a short prompt, as in a step of batched samples;
    ``ROW_REPEATS`` repeats per row count and way, in rotating order so drift in the machine's speed spreads evenly.
    """
    import llama_cpp

    model, engine = _in_process_engine(threads)
    prompt = render_chat([{"role": "user", "content": "What is the capital of France?"}])
    n_prompt = engine.count_tokens(prompt)
    engine.generate(prompt, n=1, temperature=0.0, max_tokens=1, top_logprobs=None, stop=(), seed=None)
    memory = llama_cpp.llama_get_memory(model._ctx.ctx)
    llama_cpp.llama_memory_seq_rm(memory, 0, n_prompt, -1)  # the answer's token: the prompt alone stays
    for seq in range(1, max(ROW_COUNTS)):
        llama_cpp.llama_memory_seq_cp(memory, 0, seq, 0, n_prompt)
    batch = llama_cpp.llama_batch_init(max(ROW_COUNTS), 0, 1)

    def decode(first: int, count: int) -> None:  # sequences first..first+count-1, one new token each
        engine._decode_rows(batch, [([row], 1000 + row, n_prompt) for row in range(first, first + count)])

    ways = [(rows, split) for rows in ROW_COUNTS for split in (False, True)]
    timings: dict[tuple[int, bool], list[float]] = {way: [] for way in ways}
    try:
        for repeat in range(ROW_REPEATS + 1):
            for rows, split in ways[repeat % len(ways) :] + ways[: repeat % len(ways)]:
                started = time.perf_counter()
                for first in range(rows) if split else [0]:
                    decode(first, 1 if split else rows)
                if repeat:  # the first round warms the kernels up
                    timings[rows, split].append(1000 * (time.perf_counter() - started))
                for row in range(rows):
                    llama_cpp.llama_memory_seq_rm(memory, row, n_prompt, -1)
    finally:
        llama_cpp.llama_batch_free(batch)
    return {way: np.array(values) for way, values in timings.items()}


_GREEDY = {"n": 1, "temperature": 0.0, "max_tokens": MAX_TOKENS, "top_logprobs": 5, "stop": QA_STOP, "seed": None}


GATE = "as the gate draws them"
WITHOUT = ("without padding", "without the disagreement stop", "top-k by np.argpartition", "the other small-step rule")
"""The engine's savings, each taken away alone: padding odd steps, ending samples by their words, the top-k from
chunk maxima (``engine.top_k``) instead of a partition of all 262k scores (what the engine did before), and the rule
for steps of 2 or 3 rows turned round (decoded a row at a time or not; ``engine.splits_small_steps`` picks by
threads)."""


def _argpartition_top_k(values: np.ndarray, k: int) -> np.ndarray:
    """The top-k the engine used before ``engine.top_k``: a partition of every score, then a sort of the k."""
    if k == 1:
        return np.array([int(np.argmax(values))])
    best = np.argpartition(values, -k)[-k:]
    return best[np.argsort(values[best], kind="stable")[::-1]]


@contextlib.contextmanager
def _variant(engine: Any, name: str) -> Iterator[dict[str, Any]]:
    """The engine set up as ``name`` says, and the extra arguments of its call; restored afterwards."""
    from gate.backends.embedded import engine as engine_module

    fast_top_k, splits = engine_module.top_k, engine.split_small_steps
    engine.pad_odd_rows = name != WITHOUT[0]
    engine.split_small_steps = splits != (name == WITHOUT[3])
    if name == WITHOUT[2]:
        engine_module.top_k = _argpartition_top_k
    try:
        yield {"stop_disagreeing": name != WITHOUT[1]}
    finally:
        engine.pad_odd_rows, engine.split_small_steps = True, splits
        engine_module.top_k = fast_top_k


def measure_in_process(questions: list[str], threads: int) -> dict[str, np.ndarray]:
    """Seconds per question, in this process: the greedy answer, then its 5 samples as the gate draws them and
    without each of the engine's savings in turn.

    The samples are drawn as a gate draws them (after the answer, fitted to it in tokens and words); every variant
    follows the same answer and finds the same cache (the prompt alone), in an order that rotates from one question
    to the next. Also the completion tokens of each way.
    """
    _, engine = _in_process_engine(threads)
    engine.generate(render_chat([{"role": "user", "content": "warm up"}]), **_GREEDY)  # the few-shot preamble
    names = [GATE, *WITHOUT]
    seconds: dict[str, list[float]] = {name: [] for name in ["answer", *names]}
    tokens: dict[str, list[int]] = {name: [] for name in names}
    for index, question in enumerate(questions):
        prompt = render_chat([{"role": "user", "content": question}])
        started = time.perf_counter()
        [answer] = engine.generate(prompt, **_GREEDY)
        seconds["answer"].append(time.perf_counter() - started)
        consistency, text = Consistency(), answer.text.strip()
        for name in names[index % len(names) :] + names[: index % len(names)]:
            with _variant(engine, name) as asked:
                started = time.perf_counter()
                samples = engine.generate(
                    prompt,
                    n=5,
                    temperature=1.0,
                    max_tokens=consistency.sample_tokens(text),
                    top_logprobs=1,
                    stop=QA_STOP,
                    seed=SEED + index,
                    agree_with=text if asked["stop_disagreeing"] else None,
                )
                seconds[name].append(time.perf_counter() - started)
            tokens[name].append(sum(sample.usage.completion_tokens for sample in samples))
    return {name: np.array(values) for name, values in seconds.items()} | {
        f"tokens: {name}": np.array(values) for name, values in tokens.items()
    }


def measure_logits_all(questions: list[str]) -> np.ndarray:
    """llama-cpp-python's own log-probs, which require ``logits_all=True``: seconds per answer."""
    from llama_cpp import Llama

    threads = LocalLLM().n_threads
    model = Llama(model_path=str(model_file()), n_ctx=2048, n_threads=threads, logits_all=True, verbose=False)
    model.create_completion(render_chat([{"role": "user", "content": "warm up"}]), max_tokens=4, logprobs=5)
    seconds = []
    for question in questions:
        prompt = render_chat([{"role": "user", "content": question}])
        started = time.perf_counter()
        model.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0, logprobs=5, stop=list(QA_STOP))
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def _ratio_row(name: str, numerator: np.ndarray, denominator: np.ndarray, target: float | None) -> str:
    pairs = np.column_stack([numerator, denominator])
    ratio = numerator.mean() / denominator.mean()
    low, high = bootstrap_interval(lambda rows: rows[:, 0].mean() / rows[:, 1].mean(), pairs)
    if target is None:
        return f"| {name} | {ratio:.2f}x | [{low:.2f}, {high:.2f}] | - | - |"
    verdict = "met" if ratio <= target else f"missed by {ratio - target:.2f}x"
    return f"| {name} | {ratio:.2f}x | [{low:.2f}, {high:.2f}] | <= {target}x | {verdict} |"


def _rows_table(rows: dict[tuple[int, bool], np.ndarray]) -> list[str]:
    lines = [
        "",
        "## One decode by output rows",
        "",
        "r tokens, each the next of its own sequence after a short prompt, logits for every row (a step of batched"
        f" samples), in this process: in one `llama_decode`, and in r of them, one token each; {ROW_REPEATS} times"
        " per r and way in rotating order, after a warm-up round. What a step of batched samples costs by its rows,"
        " why a step of 2 or 3 rows is decoded a row at a time on one thread (`splits_small_steps`), and why a"
        " larger one with an odd number of rows gets one throwaway row (`_Padding`; both in"
        " `gate/backends/embedded/engine.py`).",
        "",
        "| rows | one decode: median ms [95% CI] | ms per row | a decode per row: median ms [95% CI] |",
        "|---|---|---|---|",
    ]
    for count in ROW_COUNTS:
        whole, split = rows[count, False], rows[count, True]
        low, high = bootstrap_interval(np.median, whole)
        split_low, split_high = bootstrap_interval(np.median, split)
        lines.append(
            f"| {count} | {np.median(whole):.1f} [{low:.1f}, {high:.1f}] | {np.median(whole) / count:.1f} |"
            f" {np.median(split):.1f} [{split_low:.1f}, {split_high:.1f}] |"
        )
    return lines


def _in_process_table(timed: dict[str, np.ndarray], threads: int) -> list[str]:
    answer = timed["answer"]
    lines = [
        "",
        "## The engine's savings, each taken away, in one process",
        "",
        f"{len(answer)} questions in this process (no child process): the greedy answer with log-probs (top 5),"
        " then its 5 samples as a gate draws them (after the answer, fitted to it in tokens, each ending once it can"
        " no longer agree with it), and the same samples without each saving in turn: padding odd steps of 5 or 7"
        " rows (`_Padding`), ending a sample as soon as it can no longer agree with the answer"
        " (`ExactMatch.could_agree`), the top-k from chunk maxima (`engine.top_k`, against the partition of all 262k"
        " scores used before), and the rule for steps of 2 or 3 rows turned round (`splits_small_steps`: with this"
        f" many threads the gate decodes them {'a row at a time' if splits_small_steps(threads) else 'in one decode'})."
        " Order rotating per question; the same seeds (padding, splitting and the disagreement stop change how rows"
        " are batched and so llama.cpp's rounding: they may draw different samples; the top-k draws the same).",
        "",
        "| samples | mean completion tokens (5 samples) |",
        "|---|---|",
        *(f"| {name} | {timed[f'tokens: {name}'].mean():.1f} |" for name in (GATE, *WITHOUT)),
        "",
        "| ratio | measured | 95% CI | target | verdict |",
        "|---|---|---|---|---|",
        _ratio_row(f"5 samples after the answer, {GATE} / one answer", timed[GATE], answer, 1.5),
    ]
    for name in WITHOUT:
        lines.append(_ratio_row(f"5 samples after the answer, {name} / one answer", timed[name], answer, 1.5))
    for name in WITHOUT:
        lines.append(_ratio_row(f"{GATE} / {name}", timed[GATE], timed[name], None))
    return lines


def report(
    results: dict[str, np.ndarray],
    baseline: np.ndarray | None,
    n_questions: int,
    threads: int,
    *,
    rows: dict[tuple[int, bool], np.ndarray] | None = None,
    in_process: dict[str, np.ndarray] | None = None,
    arguments: str | None = None,
) -> str:
    """The results file, in Markdown; ``arguments`` are the command line's (default: those the numbers imply)."""
    if arguments is None:
        arguments = f"--questions {n_questions} --threads {threads}"
        arguments += f" --baseline-questions {0 if baseline is None else len(baseline)}"
    lines = [
        "# Embedded backend speed (Gemma 3 270M Q4_K_M, llama-cpp-python)",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.local_backend {arguments}`"
        f" ({threads} llama.cpp thread(s); without `--threads`, the gate's own: one less than the cores)",
        f"- Machine: {machine_description()}",
        f"- Packages: {package_versions(['llama-cpp-python', 'numpy'])}",
        f"- Data: the first {n_questions} questions of `trivia_dev.txt`; chat rendered to the few-shot Q/A format;"
        f" max {MAX_TOKENS} new tokens, stop at end of line; sampling seed {SEED}.",
        "- Each request is timed end to end through `LocalLLM.generate` (async wrapper, the model's child process);"
        " one pass over the questions per mode. Intervals: 95% bootstrap over questions (2,000 resamples).",
        "",
        "| mode | mean s/request | median s | 95% CI of mean | mean completion tokens |",
        "|---|---|---|---|---|",
    ]
    for name in [*MODES, ITS_ANSWER]:
        values = results[name]
        low, high = bootstrap_interval(lambda rows: rows.mean(), values)
        produced = results.get(f"tokens: {name}")
        lines.append(
            f"| {name} | {values.mean():.4f} | {np.median(values):.4f} | [{low:.4f}, {high:.4f}] |"
            f" {'-' if produced is None else f'{produced.mean():.1f}'} |"
        )
    if baseline is not None:
        low, high = bootstrap_interval(lambda rows: rows.mean(), baseline)
        lines.append(
            f"| baseline: llama-cpp-python `logits_all=True` + logprobs=5 ({len(baseline)} questions) |"
            f" {baseline.mean():.4f} | {np.median(baseline):.4f} | [{low:.4f}, {high:.4f}] | - |"
        )
    lines += [
        "",
        "| ratio | measured | 95% CI | target | verdict |",
        "|---|---|---|---|---|",
        _ratio_row("log-probs / plain", results["greedy + logprobs (top 5)"], results["greedy"], 1.3),
        _ratio_row("5 samples (batched) / one answer", results["5 samples, T=1 (batched)"], results["greedy"], 1.5),
        _ratio_row("5 samples (serial) / one answer", results["5 samples, T=1 (serial)"], results["greedy"], 3.0),
        _ratio_row(
            "5 samples after the answer, up to 32 tokens / one answer", results[AFTER_ANSWER[0]], results["greedy"], 1.5
        ),
        _ratio_row("5 samples after the answer, fitted / one answer", results[AFTER_ANSWER[1]], results["greedy"], 1.5),
        _ratio_row(
            "5 samples after the answer, fitted / that answer (paired, same pass)",
            results[AFTER_ANSWER[1]],
            results[ITS_ANSWER],
            1.5,
        ),
        _ratio_row(
            "after the answer: fitted / up to 32 tokens", results[AFTER_ANSWER[1]], results[AFTER_ANSWER[0]], None
        ),
        _ratio_row(
            "5 samples: batched / serial", results["5 samples, T=1 (batched)"], results["5 samples, T=1 (serial)"], None
        ),
        "",
        "Note: 5 samples at T=1 are longer than the greedy answer on average (see the token column), so the"
        " sampling ratios also reflect longer outputs, not only per-token cost; batched and serial sampling draw"
        " different samples from the same seed. The prompt is evaluated once per request and its KV cache shared"
        " by every sample (batched: the samples are sequences of one llama.cpp batch, one decode per step;"
        " serial: one sample after the other); across requests, whole 16-token prompt blocks shared with the"
        " previous prompt (the few-shot preamble) are reused. Every sampled token still needs the full 262k-token"
        " output layer, whose cost on the CPU grows with the rows of a batch: batching saves only part of it;"
        " samples that drew the same tokens so far share one row. *After the answer* is what a gate pays for"
        " consistency: the answer to the same prompt comes first (greedy, log-probs, timed as *its answer*), so"
        " the samples find the whole prompt in the cache and evaluate none of it; they run with log-probs, up to"
        f" the estimator's {Consistency().max_tokens} tokens or (the default) to the length it fits to that answer"
        f" (`Consistency.sample_tokens`: at least {MIN_SAMPLE_TOKENS} tokens; `sample_length.md`; and"
        " a sample that can no longer agree with the answer ends there, `ExactMatch.could_agree`).",
        "",
        "Builds (native vs portable), extra buffer types on and off, the model in this process vs in its child"
        " process, and how much the signals and decisions move between kernel paths: `kernel_paths.md`.",
    ]
    lines += _rows_table(rows) if rows is not None else []
    lines += _in_process_table(in_process, threads) if in_process is not None else []
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--baseline-questions", type=int, default=10, help="0 skips the logits_all baseline")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the gate's own)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the Markdown report goes")
    args = parser.parse_args()
    questions = [item.question for item in load_trivia(limit=args.questions)]
    threads = args.threads or LocalLLM().n_threads
    results = asyncio.run(measure(questions, args.threads))
    baseline = measure_logits_all(questions[: args.baseline_questions]) if args.baseline_questions else None
    rows = measure_rows(threads)
    in_process = measure_in_process(questions, threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    arguments = " ".join(sys.argv[1:])
    args.out.write_text(
        report(results, baseline, len(questions), threads, rows=rows, in_process=in_process, arguments=arguments)
    )
    print(args.out.read_text())


if __name__ == "__main__":
    main()
