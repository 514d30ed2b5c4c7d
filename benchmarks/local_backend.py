"""Speed of the embedded backend: greedy answers with and without log-probs, and 5-sample requests.

Run: ``.venv/bin/python -m benchmarks.local_backend [--questions 50] [--baseline-questions 10]``
Writes ``benchmarks/results/local_backend.md`` (``--out`` elsewhere). Targets: log-probs cost at most 1.3x the
plain answer (issue 2); 5 samples at T=1, decoded as one batch, cost at most 1.5x one answer (the batched
sampling issue; decoded one after the other, the target was 3x). The 5 samples are timed both ways, the serial
way in a second model process (``LocalLLM(sample_decoding="serial")``). The baseline is llama-cpp-python's own
log-probs (``logits_all=True``) on a few questions, to show what computing them ourselves saves.

Then, with the model in this process: what one ``llama_decode`` costs by its number of output rows (the evidence
for padding odd steps, ``_Padding`` in the engine), and the gate's samples after the answer with and without that
padding, paired question by question.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from estimators.consistency import MIN_SAMPLE_TOKENS, Consistency
from gate.backends.embedded.local import LocalLLM, model_file
from gate.backends.embedded.prompt_format import QA_STOP, render_chat
from gate.datasets import load_trivia

RESULTS = Path(__file__).parent / "results" / "local_backend.md"
MAX_TOKENS = 16
SEED = 0


async def _time(llm: LocalLLM, messages: list[dict[str, str]], **kwargs: object) -> tuple[float, int]:
    kwargs = {"max_tokens": MAX_TOKENS} | kwargs
    started = time.perf_counter()
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
the estimator's ``max_tokens`` or to the length it fits to that answer (``Consistency.sample_tokens``)."""
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
                    asked = kwargs | {"max_tokens": Consistency().sample_tokens(answer.text.strip())}
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
    from gate.backends.embedded.engine import LlamaEngine

    extra = use_extra_buffers("auto", cpu=cpu_flags(), build=build_features(system_info()))
    model = load_llama(str(model_file()), n_ctx=2048, n_threads=threads, extra_buffers=extra)
    return model, LlamaEngine(model)


def measure_rows(threads: int) -> dict[int, np.ndarray]:
    """Milliseconds of one ``llama_decode`` of ``r`` tokens with logits for every one, for each ``r``.

    Each token is the next one of its own sequence after a short prompt, as in a step of batched samples;
    ``ROW_REPEATS`` decodes per row count, in rotating order so drift in the machine's speed spreads evenly.
    """
    import llama_cpp

    model, engine = _in_process_engine(threads)
    prompt = render_chat([{"role": "user", "content": "What is the capital of France?"}])
    n_prompt = engine.count_tokens(prompt)
    engine.generate(prompt, n=1, temperature=0.0, max_tokens=1, top_logprobs=None, stop=(), seed=None)
    ctx = model._ctx.ctx
    memory = llama_cpp.llama_get_memory(ctx)
    llama_cpp.llama_memory_seq_rm(memory, 0, n_prompt, -1)  # the answer's token: the prompt alone stays
    for seq in range(1, max(ROW_COUNTS)):
        llama_cpp.llama_memory_seq_cp(memory, 0, seq, 0, n_prompt)
    batch = llama_cpp.llama_batch_init(max(ROW_COUNTS), 0, 1)
    timings: dict[int, list[float]] = {rows: [] for rows in ROW_COUNTS}
    try:
        for repeat in range(ROW_REPEATS + 1):
            for rows in ROW_COUNTS[repeat % len(ROW_COUNTS) :] + ROW_COUNTS[: repeat % len(ROW_COUNTS)]:
                for row in range(rows):
                    batch.token[row], batch.pos[row] = 1000 + row, n_prompt
                    batch.n_seq_id[row], batch.logits[row] = 1, 1
                    batch.seq_id[row][0] = row
                batch.n_tokens = rows
                started = time.perf_counter()
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError(f"llama_decode failed for {rows} rows")
                if repeat:  # the first round warms the kernels up
                    timings[rows].append(1000 * (time.perf_counter() - started))
                for row in range(rows):
                    llama_cpp.llama_memory_seq_rm(memory, row, n_prompt, -1)
    finally:
        llama_cpp.llama_batch_free(batch)
    return {rows: np.array(values) for rows, values in timings.items()}


_GREEDY = {"n": 1, "temperature": 0.0, "max_tokens": MAX_TOKENS, "top_logprobs": 5, "stop": QA_STOP, "seed": None}


def measure_padding(questions: list[str], threads: int) -> dict[str, np.ndarray]:
    """Seconds per question, in this process: the greedy answer, then its 5 samples with and without padding.

    The samples are drawn as a gate draws them (after the answer, fitted to it); both ways follow the same answer
    and find the same cache (the prompt alone), in alternating order from one question to the next.
    """
    _, engine = _in_process_engine(threads)
    engine.generate(render_chat([{"role": "user", "content": "warm up"}]), **_GREEDY)  # the few-shot preamble
    seconds: dict[str, list[float]] = {"answer": [], "padded": [], "unpadded": []}
    for index, question in enumerate(questions):
        prompt = render_chat([{"role": "user", "content": question}])
        started = time.perf_counter()
        [answer] = engine.generate(prompt, **_GREEDY)
        seconds["answer"].append(time.perf_counter() - started)
        order = [("padded", True), ("unpadded", False)]
        for name, pad in order if index % 2 == 0 else order[::-1]:
            engine.pad_odd_rows = pad
            started = time.perf_counter()
            engine.generate(
                prompt,
                n=5,
                temperature=1.0,
                max_tokens=Consistency().sample_tokens(answer.text.strip()),
                top_logprobs=1,
                stop=QA_STOP,
                seed=SEED + index,
            )
            seconds[name].append(time.perf_counter() - started)
    return {name: np.array(values) for name, values in seconds.items()}


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


def _rows_table(rows: dict[int, np.ndarray]) -> list[str]:
    lines = [
        "",
        "## One decode by output rows",
        "",
        f"`llama_decode` of r tokens, each the next of its own sequence after a short prompt, logits for every row"
        f" (a step of batched samples), in this process; {ROW_REPEATS} decodes per r in rotating order, after a"
        " warm-up round. What a step of batched samples costs by its rows, and why a step with an odd number of"
        " rows from 3 up gets one throwaway row (`_Padding` in `gate/backends/embedded/engine.py`).",
        "",
        "| rows | median ms [95% CI] | ms per row |",
        "|---|---|---|",
    ]
    for count, values in rows.items():
        low, high = bootstrap_interval(np.median, values)
        lines.append(f"| {count} | {np.median(values):.1f} [{low:.1f}, {high:.1f}] | {np.median(values) / count:.1f} |")
    return lines


def _padding_table(padding: dict[str, np.ndarray]) -> list[str]:
    answer = padding["answer"]
    return [
        "",
        "## Padding odd steps, in one process",
        "",
        f"{len(answer)} questions in this process (no child process): the greedy answer with log-probs (top 5),"
        " then its 5 samples as a gate draws them (after the answer, fitted to it), once with odd steps padded and"
        " once without, in alternating order; the same seeds (the two ways round differently, so they may draw"
        " different samples).",
        "",
        "| ratio | measured | 95% CI | target | verdict |",
        "|---|---|---|---|---|",
        _ratio_row("5 samples after the answer, padded / one answer", padding["padded"], answer, 1.5),
        _ratio_row("5 samples after the answer, unpadded / one answer", padding["unpadded"], answer, 1.5),
        _ratio_row("padded / unpadded", padding["padded"], padding["unpadded"], None),
    ]


def report(
    results: dict[str, np.ndarray],
    baseline: np.ndarray | None,
    n_questions: int,
    threads: int,
    *,
    rows: dict[int, np.ndarray] | None = None,
    padding: dict[str, np.ndarray] | None = None,
) -> str:
    """The results file, in Markdown."""
    lines = [
        "# Embedded backend speed (Gemma 3 270M Q4_K_M, llama-cpp-python)",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.local_backend --questions {n_questions} --threads {threads}`"
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
        f" (`Consistency.sample_tokens`: at least {MIN_SAMPLE_TOKENS} tokens; `sample_length.md`).",
        "",
        "Builds (native vs portable), extra buffer types on and off, the model in this process vs in its child"
        " process, and how much the signals and decisions move between kernel paths: `kernel_paths.md`.",
    ]
    lines += _rows_table(rows) if rows is not None else []
    lines += _padding_table(padding) if padding is not None else []
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
    padding = measure_padding(questions, threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, baseline, len(questions), threads, rows=rows, padding=padding))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
