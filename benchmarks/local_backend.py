"""Speed of the embedded backend: greedy answers with and without log-probs, and 5-sample requests.

Run: ``.venv/bin/python -m benchmarks.local_backend [--questions 50] [--baseline-questions 10]``
Writes ``benchmarks/results/local_backend.md`` (``--out`` elsewhere). Targets: log-probs cost at most 1.3x the
plain answer (issue 2); 5 samples at T=1, decoded as one batch, cost at most 1.5x one answer (the batched
sampling issue; decoded one after the other, the target was 3x). The 5 samples are timed both ways, the serial
way in a second model process (``LocalLLM(sample_decoding="serial")``). The baseline is llama-cpp-python's own
log-probs (``logits_all=True``) on a few questions, to show what computing them ourselves saves.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

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
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    tokens: dict[str, list[int]] = {name: [] for name in modes}
    # One pass per mode, so every request finds the same cache state (the previous question's prompt
    # blocks), rather than a later mode reusing the prompt an earlier mode just evaluated.
    for name, (model, kwargs) in modes.items():
        for question in questions:
            asked = kwargs
            if name in AFTER_ANSWER:
                [answer] = await model.generate([{"role": "user", "content": question}], max_tokens=64, logprobs=5)
                if name == AFTER_ANSWER[1]:
                    asked = kwargs | {"max_tokens": Consistency().sample_tokens(answer.text.strip())}
            took, produced = await _time(model, [{"role": "user", "content": question}], **asked)
            seconds[name].append(took)
            tokens[name].append(produced)
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


def report(results: dict[str, np.ndarray], baseline: np.ndarray | None, n_questions: int, threads: int) -> str:
    """The results file, in Markdown."""
    lines = [
        "# Embedded backend speed (Gemma 3 270M Q4_K_M, llama-cpp-python)",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.local_backend --questions {n_questions}`"
        f" ({threads} llama.cpp thread(s))",
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
    for name in MODES:
        values = results[name]
        low, high = bootstrap_interval(lambda rows: rows.mean(), values)
        lines.append(
            f"| {name} | {values.mean():.4f} | {np.median(values):.4f} | [{low:.4f}, {high:.4f}] |"
            f" {results[f'tokens: {name}'].mean():.1f} |"
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
        " consistency: the answer to the same prompt comes first (not timed), so the samples find the whole prompt"
        " in the cache and evaluate none of it; they run with log-probs, up to the estimator's"
        f" {Consistency().max_tokens} tokens or (the default) to the length it fits to that answer"
        f" (`Consistency.sample_tokens`: at least {MIN_SAMPLE_TOKENS} tokens; `sample_length.md`).",
        "",
        "Builds (native vs portable), extra buffer types on and off, the model in this process vs in its child"
        " process, and how much the signals and decisions move between kernel paths: `kernel_paths.md`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--baseline-questions", type=int, default=10, help="0 skips the logits_all baseline")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the gate's own)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the Markdown report goes")
    args = parser.parse_args()
    questions = [item.question for item in load_trivia(limit=args.questions)]
    results = asyncio.run(measure(questions, args.threads))
    baseline = measure_logits_all(questions[: args.baseline_questions]) if args.baseline_questions else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    threads = args.threads or LocalLLM().n_threads
    args.out.write_text(report(results, baseline, len(questions), threads))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
