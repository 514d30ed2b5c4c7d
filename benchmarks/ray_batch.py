"""Batch throughput: ``gate score`` locally vs ``gate score --ray ADDRESS`` on a local Ray instance (2 CPUs).

Run: ``.venv/bin/python -m benchmarks.ray_batch [--lines 200] [--embedded-lines 40] [--repeats 5]
[--embedded-repeats 3] [--delay-ms 20] [--seed 0]``

The same lines (TriviaQA questions drawn with ``--seed``, each with a response: the gold answer on even
lines, another question's on odd ones) are scored by what ``gate score`` runs, against two upstreams:

- ``stub``: ``benchmarks/stub_upstream.py`` answering every call after ``--delay-ms`` (a slow remote model
  that costs this machine nothing), signals ``logprob_min, consistency, p_true`` with ``--sample-more 2``:
  two upstream calls a line. Both paths keep 8 lines in flight (local ``--concurrency 8``; Ray 2 actors x
  ``--concurrency 4``), so the difference is the orchestration, not the concurrency.
- ``embedded``: the bundled Gemma 3 270M (the default suite, familiarity computed for every line:
  ``familiarity_cache: off``), on the first ``--embedded-lines`` of the same lines. Local: one model
  process; Ray: one model process per actor (2).

Both paths run in this process through the functions ``gate score`` calls (``score_file`` on a Gate built
here; ``score_on_ray`` on the Ray instance this process started once, ``ray.init(num_cpus=2)``, as a
cluster would already be running; its start time is reported on its own). Each run is timed twice: whole
(building the Gate, or starting the actors and their Gates, then every line) and steady (from the first line
written to the last: (lines - 1) / seconds), so that a fixed start cost and the per-line rate are seen
apart. Local and Ray runs alternate per repeat, so background load hits both alike. Each Ray output is
compared with the local one, wall-clock seconds aside. Nothing is fitted or tuned here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from gate.backends.factory import run_then_close
from gate.config import load_settings
from gate.factory import budget_from, create_gate
from gate.offline.collect import sample_items
from gate.offline.ray_batch import RayCluster, score_on_ray
from gate.offline.score import score_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLE_MORE = {"stub": 2}
"""Fresh samples per line, by config (the stub's consistency draws 2; the embedded model draws none)."""


@dataclass
class Timing:
    """One path's runs: whole seconds, steady lines/s, and whether every output matched the local one."""

    whole: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)
    identical: bool | None = None


def write_lines(path: Path, *, lines: int, seed: int, data_dir: Path | None) -> Path:
    """The benchmark's input: seeded TriviaQA questions with a right or a wrong response."""
    items = [item for _, item in sample_items(["trivia"], limit=lines, seed=seed, data_dir=data_dir)]
    with path.open("w", encoding="utf-8") as handle:
        for i, item in enumerate(items):
            response = item.answers[0] if i % 2 == 0 else items[(i + 1) % len(items)].answers[0]
            handle.write(json.dumps({"id": item.id, "question": item.question, "response": response}) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def stub(delay_ms: float) -> Iterator[str]:
    """The stub upstream in its own process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.stub_upstream", "--port", str(port), "--delay-ms", str(delay_ms)]
    process = subprocess.Popen(command, cwd=ROOT, env=_env())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_score(
    source: Path, out: Path, config: Path, *, concurrency: int, ray_address: str | None
) -> tuple[float, float]:
    """One ``gate score`` run, as the command runs it: whole seconds, and steady lines/s."""
    out.unlink(missing_ok=True)
    settings = load_settings(config_file=config)
    written: list[float] = []
    started = time.perf_counter()
    if ray_address is None:
        gate = create_gate(settings)
        work = score_file(gate, source, out, sample_more=SAMPLE_MORE.get(config.stem, 0), concurrency=concurrency,
                          budget=budget_from(settings), on_line=lambda: written.append(time.perf_counter()))
        summary = run_then_close(gate.llm, work)
    else:
        summary = score_on_ray(settings, source, out, RayCluster(ray_address), concurrency=concurrency,
                               sample_more=SAMPLE_MORE.get(config.stem, 0),
                               on_line=lambda: written.append(time.perf_counter()))
    whole = time.perf_counter() - started
    if summary.malformed or summary.scored != len(written):
        raise RuntimeError(f"unexpected run: {summary.lines()}")
    return whole, (len(written) - 1) / (written[-1] - written[0])


def without_seconds(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row["gate"]["cost"].pop("seconds")
        row["gate"]["gate_cost"].pop("seconds")
    return rows


def measure(
    source: Path, work: Path, config: Path, *, local: int, remote: int, address: str, repeats: int
) -> tuple[Timing, Timing]:
    """Local (``local`` lines in flight) and Ray (``remote`` per actor) runs, alternated per repeat."""
    here, there = Timing(), Timing(identical=True)
    for repeat in range(repeats):
        for timing, concurrency, ray_address, name in ((here, local, None, "local"), (there, remote, address, "ray")):
            whole, steady = run_score(source, work / f"{name}.jsonl", config, concurrency=concurrency,
                                      ray_address=ray_address)
            timing.whole.append(whole)
            timing.steady.append(steady)
        there.identical &= without_seconds(work / "local.jsonl") == without_seconds(work / "ray.jsonl")
        print(f"  repeat {repeat + 1}: local {here.whole[-1]:.1f} s ({here.steady[-1]:.2f} lines/s steady), "
              f"ray {there.whole[-1]:.1f} s ({there.steady[-1]:.2f} lines/s steady)", file=sys.stderr)
    return here, there


def summary_row(name: str, timing: Timing, lines: int, seed: int) -> str:
    whole = np.array(timing.whole)
    steady = np.array(timing.steady)
    low, high = bootstrap_interval(np.median, steady, seed=seed)
    same = "" if timing.identical is None else ("yes" if timing.identical else "**no**")
    return (
        f"| {name} | {np.median(whole):.1f} ({whole.min():.1f}-{whole.max():.1f}) | {np.median(lines / whole):.2f} "
        f"| {np.median(steady):.2f} [{low:.2f}, {high:.2f}] ({steady.min():.2f}-{steady.max():.2f}) | {same} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--embedded-lines", type=int, default=40, help="0 skips the embedded model")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embedded-repeats", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the stub's wait before each answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $GATE_DATA_DIR or ../shared/datasets")
    parser.add_argument("--out", type=Path, default=RESULTS / "ray_batch.md")
    args = parser.parse_args()

    import ray

    work = Path(tempfile.mkdtemp(prefix="raybench", dir="/tmp"))
    source = write_lines(work / "in.jsonl", lines=args.lines, seed=args.seed, data_dir=args.data_dir)
    started = time.perf_counter()
    context = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(work / "ray"), logging_level=logging.WARNING,
                       log_to_driver=False)
    ray_start = time.perf_counter() - started
    address = context.address_info["gcs_address"]
    results: dict[str, tuple[int, Timing, Timing]] = {}
    try:
        with stub(args.delay_ms) as url:
            config = work / "stub.yaml"
            config.write_text(f"model: openai/stub\napi_base: {url}\napi_key: sk-bench\nfamiliarity_cache: 'off'\n"
                              f"cache_dir: {work / 'cache'}\nsignals: [logprob_min, consistency, p_true]\n")
            print(f"stub upstream, {args.lines} lines", file=sys.stderr)
            results["stub"] = (args.lines, *measure(
                source, work, config, local=8, remote=4, address=address, repeats=args.repeats
            ))
        if args.embedded_lines:
            small = work / "in-small.jsonl"
            small.write_text("".join(source.read_text(encoding="utf-8").splitlines(True)[: args.embedded_lines]))
            config = work / "embedded.yaml"
            config.write_text("familiarity_cache: 'off'\n")
            print(f"embedded model, {args.embedded_lines} lines", file=sys.stderr)
            results["embedded"] = (args.embedded_lines, *measure(
                small, work, config, local=2, remote=1, address=address, repeats=args.embedded_repeats
            ))
    finally:
        ray.shutdown()
    write_report(args, results, ray_start)
    shutil.rmtree(work, ignore_errors=True)


def write_report(args: argparse.Namespace, results: dict[str, tuple[int, Timing, Timing]], ray_start: float) -> None:
    command = "python -m benchmarks.ray_batch " + " ".join(
        f"--{key.replace('_', '-')} {value}" for key, value in vars(args).items() if key not in {"out", "data_dir"}
    )
    lines = [
        "# Batch throughput: `gate score` locally vs on Ray (`--ray ADDRESS`, local instance, 2 CPUs)",
        "",
        f"Command: `{command}` (from the repository root; `benchmarks/ray_batch.py` says what each run does).",
        f"Machine: {machine_description()}. Shared and busy: other jobs ran on the same 2 cores throughout, so "
        "read the numbers as this machine on this day, with the spread the ranges show.",
        f"Packages: {package_versions(['ray', 'llama-cpp-python', 'litellm'])}.",
        f"Input: TriviaQA questions drawn with seed {args.seed} (`gate.offline.collect.sample_items`), a right "
        "response on even lines, a wrong one on odd lines. Nothing is fitted or tuned on these lines.",
        f"Ray instance start (once, in the benchmark's process, `ray.init(num_cpus=2)`): {ray_start:.1f} s.",
        "",
        "*Whole*: seconds from the call to its return, in this process with everything imported (local: building "
        "the Gate and scoring; Ray: starting 2 actors that build their Gates, scoring, ending them): median "
        "(range over repeats), and lines over it. *Steady*: (lines - 1) over the seconds from the first line "
        "written to the last: median [95% bootstrap interval of the median] (range). *Identical*: every Ray "
        "output equal to the local one, wall-clock seconds aside. A `gate score` command adds its own start "
        "(imports, about 7-10 s here) to both paths alike.",
        "",
    ]
    names = {"stub": f"Stub upstream, {args.delay_ms:g} ms per call, 2 calls a line, 8 lines in flight",
             "embedded": "Embedded Gemma 3 270M, default suite (familiarity for every line)"}
    for key, (count, local, remote) in results.items():
        repeats = len(local.whole)
        lines += [
            f"## {names[key]}: {count} lines, {repeats} repeats",
            "",
            "| path | seconds, whole | lines/s, whole | lines/s, steady | identical |",
            "|---|---|---|---|---|",
            summary_row("local", local, count, args.seed),
            summary_row("Ray, 2 actors", remote, count, args.seed),
            "",
        ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
