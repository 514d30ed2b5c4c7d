"""Reliability of ``gate serve``: load with upstream faults, SIGTERM with requests in flight, a fuzzed upstream.

Run: ``.venv/bin/python -m benchmarks.reliability [--requests 2500] [--rounds 2] [--concurrency 64]
[--fail-rate 0.1] [--hang-rate 0.05] [--seed 0] [--shutdown-requests 48] [--fuzz-examples 150]``

Three parts, each against ``benchmarks/stub_upstream.py`` on loopback with ``gate serve`` as a real process
(one uvicorn worker, the direct HTTP transport, the audit log on):

1. **Load with faults**: ``--rounds`` rounds of ``--requests`` chat requests at ``--concurrency``; the stub
   answers a seeded ``--fail-rate`` of the gate's upstream calls with a 500 and leaves ``--hang-rate``
   unanswered. Every request makes two upstream calls (the answer, then consistency's samples), with no
   retries, so a fault in the answer call is the client's 502/504 and a fault in the samples costs the
   consistency signal only. Reported: status counts, lost signals, p50/p95 latency with 95% bootstrap
   intervals, audit lines against requests, the server's RSS before and after each round.
2. **Shutdown**: a stub that answers after ``--shutdown-delay-ms``, ``--shutdown-requests`` requests in
   flight, then SIGTERM: how many finished with a 200, whether new connections were refused meanwhile, the
   exit status and time, audit lines.
3. **Fuzzed upstream**: ``tests/test_upstream_fuzz.py`` with ``--fuzz-examples`` derandomized hypothesis
   examples per transport (direct and litellm), each line of its report counted by outcome.

Everything (client, stub, gate) shares this machine's cores: read the latencies as "on this machine".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import bootstrap_interval, machine_description, package_versions
from benchmarks.overhead import free_port, process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLIENT_KEY = "sk-reliability-client-5e1d7c"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
PACKAGES = ["fastapi", "starlette", "uvicorn", "h11", "aiohttp", "httpx", "litellm", "hypothesis", "numpy"]


@dataclass(frozen=True)
class Outcome:
    """One client request: HTTP status (0: no response), seconds, and whether a signal was lost."""

    status: int
    seconds: float
    code: str | None = None  # OpenAI error code, or the transport error's class
    lost_signal: bool = False


# --- processes ------------------------------------------------------------------------------------------------


def python_env() -> dict[str, str]:
    """Children import this checkout's packages (not an installed copy elsewhere)."""
    return {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def stub_command(port: int, *, fail: float = 0.0, hang: float = 0.0, delay_ms: float = 0.0, seed: int = 0) -> list[str]:
    return [
        *(sys.executable, "-m", "benchmarks.stub_upstream", "--port", str(port)),
        *("--fail-rate", str(fail), "--hang-rate", str(hang), "--delay-ms", str(delay_ms), "--seed", str(seed)),
    ]


def gate_env(stub_port: int, audit: Path, *, signals: list[str], timeout_s: float) -> dict[str, str]:
    return {
        "GATE_MODEL": "openai/stub",
        "GATE_API_BASE": f"http://127.0.0.1:{stub_port}/v1",
        "GATE_API_KEY": "sk-upstream-reliability",
        "GATE_API_KEYS": json.dumps([CLIENT_KEY]),
        "GATE_SIGNALS": json.dumps(signals),
        "GATE_MAX_RETRIES": "0",
        "GATE_TIMEOUT_S": str(timeout_s),
        "GATE_MAX_CONCURRENCY": "256",  # above the client's concurrency: the limit is not what is measured
        "GATE_FAMILIARITY_CACHE": "off",
        "GATE_AUDIT_PATH": str(audit),
        "GATE_LOG_LEVEL": "warning",
    }


def gate_command(port: int) -> list[str]:
    """``gate serve`` from this checkout (the ``gate`` script may belong to an installed copy elsewhere)."""
    return [sys.executable, "-c", "from gate.cli.main import main; main()", "serve", "--port", str(port)]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return kib / 1024


def audit_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


# --- load -----------------------------------------------------------------------------------------------------


async def one_request(client: httpx.AsyncClient, url: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(url, json={"model": "openai/stub", "messages": QUESTION})
    except httpx.HTTPError as exc:
        return Outcome(0, time.perf_counter() - started, type(exc).__name__)
    seconds = time.perf_counter() - started
    body = response.json()
    if response.status_code != 200:
        return Outcome(response.status_code, seconds, body.get("error", {}).get("code"))
    return Outcome(200, seconds, lost_signal=bool(body["gate"]["errors"]))


async def load(url: str, total: int, concurrency: int) -> list[Outcome]:
    """``total`` requests, ``concurrency`` at a time (each worker sends its next as soon as one is answered)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    outcomes: list[Outcome] = []
    remaining = iter(range(total))
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=120) as client:

        async def worker() -> None:
            for _ in remaining:
                outcomes.append(await one_request(client, url))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


@dataclass(frozen=True)
class Round:
    outcomes: list[Outcome]
    seconds: float
    rss_before: float
    rss_after: float
    audit_lines: int


def load_with_faults(args: argparse.Namespace, work: Path) -> tuple[list[Round], float]:
    """The rounds of part 1 against one gate process; also returns the RSS right after start."""
    stub_port, gate_port = free_port(), free_port()
    audit = work / "load-audit.jsonl"
    stub = stub_command(stub_port, fail=args.fail_rate, hang=args.hang_rate, seed=args.seed)
    signals = ["logprob_min", "consistency"]
    env = {**python_env(), **gate_env(stub_port, audit, signals=signals, timeout_s=args.timeout_s)}
    root = f"http://127.0.0.1:{gate_port}"
    url = root + "/v1/chat/completions"
    rounds = []
    with (
        process(stub, env=python_env(), ready_url=f"http://127.0.0.1:{stub_port}/v1/models", log=work / "stub.log"),
        process(gate_command(gate_port), env=env, ready_url=root + "/readyz", log=work / "gate.log") as gate,
    ):
        started_rss = rss_mib(gate.pid)
        asyncio.run(load(url, args.warmup, min(args.concurrency, args.warmup)))  # connections, caches, first calls
        for _ in range(args.rounds):
            before, lines_before = rss_mib(gate.pid), audit_lines(audit)
            began = time.perf_counter()
            outcomes = asyncio.run(load(url, args.requests, args.concurrency))
            seconds = time.perf_counter() - began
            rounds.append(Round(outcomes, seconds, before, rss_mib(gate.pid), audit_lines(audit) - lines_before))
    return rounds, started_rss


# --- shutdown -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shutdown:
    outcomes: list[Outcome]
    in_flight_at_signal: int
    refused_after_signal: int
    tried_after_signal: int
    exit_code: int | None
    exit_seconds: float
    audit_lines: int


def in_flight(root: str) -> int:
    text = httpx.get(root + "/metrics", headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=5).text
    match = re.search(r"^gate_in_flight_requests\s+([0-9.e+]+)", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def shutdown(args: argparse.Namespace, work: Path) -> Shutdown:
    """Part 2: SIGTERM while ``--shutdown-requests`` requests wait for a slow upstream."""
    stub_port, gate_port = free_port(), free_port()
    audit = work / "shutdown-audit.jsonl"
    stub = stub_command(stub_port, delay_ms=args.shutdown_delay_ms)
    env = {**python_env(), **gate_env(stub_port, audit, signals=["logprob_min"], timeout_s=30)}
    root = f"http://127.0.0.1:{gate_port}"
    results: list[Outcome] = []
    with (
        process(stub, env=python_env(), ready_url=f"http://127.0.0.1:{stub_port}/v1/models", log=work / "stub2.log"),
        process(gate_command(gate_port), env=env, ready_url=root + "/readyz", log=work / "gate2.log") as gate,
    ):
        n = args.shutdown_requests
        sender = threading.Thread(target=lambda: results.extend(asyncio.run(load(root + "/v1/chat/completions", n, n))))
        sender.start()
        deadline = time.monotonic() + 20
        while (flying := in_flight(root)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        gate.send_signal(signal.SIGTERM)
        signalled = time.perf_counter()
        time.sleep(0.2)  # uvicorn closes its listening socket first
        tried, refused = 5, 0
        for _ in range(tried):
            try:
                httpx.get(root + "/healthz", timeout=2)
            except httpx.ConnectError:
                refused += 1
        exit_code = gate.wait(timeout=120)
        exit_seconds = time.perf_counter() - signalled
        sender.join(timeout=120)
    return Shutdown(results, flying, refused, tried, exit_code, exit_seconds, audit_lines(audit))


# --- fuzz -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fuzz:
    rows: list[dict[str, object]]
    passed: bool
    summary: str
    seconds: float


def fuzz(args: argparse.Namespace, work: Path) -> Fuzz:
    report = work / "fuzz.jsonl"
    env = {**os.environ, **python_env(), "GATE_FUZZ_EXAMPLES": str(args.fuzz_examples), "GATE_FUZZ_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "tests/test_upstream_fuzz.py", "-q", "-p", "no:cacheprovider"]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    return Fuzz(rows, done.returncode == 0, summary, seconds)


# --- the report -----------------------------------------------------------------------------------------------


def lscpu() -> str:
    done = subprocess.run(["lscpu"], capture_output=True, text=True, check=False)
    fields = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    wanted = ("Model name", "CPU(s)", "Thread(s) per core", "Hypervisor vendor")
    return "; ".join(f"{name}: {fields[name].strip()}" for name in wanted if name in fields)


def quantile_cell(seconds: np.ndarray, q: float, seed: int) -> str:
    if len(seconds) < 2:
        return "-"
    low, high = bootstrap_interval(lambda x: float(np.percentile(x, q)), seconds, seed=seed)
    return f"{np.percentile(seconds, q) * 1000:.0f} [{low * 1000:.0f}, {high * 1000:.0f}]"


def status_name(outcome: Outcome) -> str:
    if outcome.status == 0:
        return f"no response ({outcome.code})"
    if outcome.status == 200:
        return "200 (a signal lost)" if outcome.lost_signal else "200"
    return f"{outcome.status} {outcome.code}"


def load_lines(rounds: list[Round], started_rss: float, args: argparse.Namespace) -> list[str]:
    lines = [
        "| round | requests | seconds | requests/s | statuses | p50 ms [95% CI] | p95 ms [95% CI] | audit lines "
        "| RSS before -> after (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, round_ in enumerate(rounds, 1):
        seconds = np.array([o.seconds for o in round_.outcomes])
        counts = Counter(status_name(o) for o in round_.outcomes)
        statuses = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
        lines.append(
            f"| {index} | {len(round_.outcomes)} | {round_.seconds:.1f} | {len(round_.outcomes) / round_.seconds:.0f} "
            f"| {statuses} | {quantile_cell(seconds, 50, args.seed)} | {quantile_cell(seconds, 95, args.seed)} "
            f"| {round_.audit_lines} | {round_.rss_before:.1f} -> {round_.rss_after:.1f} |"
        )
    lines += ["", "Latency by status (all rounds):", "", "| status | n | p50 ms [95% CI] | p95 ms [95% CI] |"]
    lines.append("|---|---|---|---|")
    everything = [o for round_ in rounds for o in round_.outcomes]
    for name in sorted({status_name(o) for o in everything}):
        seconds = np.array([o.seconds for o in everything if status_name(o) == name])
        p50, p95 = quantile_cell(seconds, 50, args.seed), quantile_cell(seconds, 95, args.seed)
        lines.append(f"| {name} | {len(seconds)} | {p50} | {p95} |")
    n, fail, hang = len(everything), args.fail_rate, args.hang_rate
    shares = Counter(o.status if o.status != 200 or not o.lost_signal else "lost" for o in everything)
    expected_lost = (1 - fail - hang) * (fail + hang)  # the answer call went through, the samples' call did not
    served = sum(o.status in (200, 502, 504) for o in everything)
    audited = sum(r.audit_lines for r in rounds)
    lines += [
        "",
        f"- Every request answered with 200, 502 or 504: {served == len(everything)} ({served} of {len(everything)});"
        f" no 500: {all(o.status != 500 for o in everything)}; no request without a response:"
        f" {all(o.status != 0 for o in everything)}.",
        f"- Audit lines = requests: {audited == len(everything)} ({audited} lines for {len(everything)} requests).",
        f"- Against the fault rates: 502 {shares[502] / n:.1%} (expected {fail:.1%}: the answer call got a 500), 504"
        f" {shares[504] / n:.1%} (expected {hang:.1%}: it got no answer), 200 with the consistency signal lost"
        f" {shares['lost'] / n:.1%} (expected {expected_lost:.1%}: the samples' call failed).",
        f"- RSS: {started_rss:.1f} MiB after start, {rounds[0].rss_before:.1f} MiB after the {args.warmup}-request "
        f"warm-up, {rounds[-1].rss_after:.1f} MiB after the last round.",
    ]
    return lines


def shutdown_lines(result: Shutdown, args: argparse.Namespace) -> list[str]:
    counts = Counter(status_name(o) for o in result.outcomes)
    finished = counts.get("200", 0)
    return [
        f"- {args.shutdown_requests} requests sent at once to a gate whose upstream answers after "
        f"{args.shutdown_delay_ms:.0f} ms; {result.in_flight_at_signal} in flight (gate_in_flight_requests) when "
        "SIGTERM was sent.",
        f"- Finished with a 200: {finished} of {len(result.outcomes)}"
        f" ({', '.join(f'{name}: {count}' for name, count in sorted(counts.items()))}).",
        f"- New connections after the signal: {result.refused_after_signal} of {result.tried_after_signal} refused.",
        f"- Exit status {result.exit_code} (uvicorn re-raises the signal once its graceful shutdown is done, so a"
        f" clean stop by SIGTERM reads -15), {result.exit_seconds:.2f} s after the signal; audit lines:"
        f" {result.audit_lines} (= finished: {result.audit_lines == finished}).",
    ]


def fuzz_lines(result: Fuzz, args: argparse.Namespace) -> list[str]:
    lines = [
        f"- `tests/test_upstream_fuzz.py` with {args.fuzz_examples} examples per transport (hypothesis, derandomized,"
        f" plus its explicit examples): {len(result.rows)} generated upstream scripts, pytest: `{result.summary}`"
        f" ({'invariant held' if result.passed else 'INVARIANT BROKEN'}), {result.seconds:.0f} s.",
        "",
        "| transport | 200 | 200 with lost signals | 502 | 504 | 400/429 passed on | other |",
        "|---|---|---|---|---|---|---|",
    ]
    for transport in ("direct", "litellm"):
        rows = [row for row in result.rows if row["transport"] == transport]
        ok = [row for row in rows if row["status"] == 200]
        lost = sum(bool(row["signals_lost"]) for row in ok)
        by = Counter(row["status"] for row in rows)
        other = len(rows) - sum(by[s] for s in (200, 502, 504, 400, 429))
        lines.append(f"| {transport} | {len(ok)} | {lost} | {by[502]} | {by[504]} | {by[400] + by[429]} | {other} |")
    kinds = Counter(str(row["fault"]) for row in result.rows)
    codes = Counter(str(row["code"]) for row in result.rows if row["code"])
    lines += [
        "",
        "- Scripts by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())) + ".",
        "- Error codes: " + ", ".join(f"{code} {count}" for code, count in sorted(codes.items())) + ".",
    ]
    return lines


def write(path: Path, sections: dict[str, list[str]], args: argparse.Namespace, command: str) -> None:
    header = [
        "# Reliability: upstream faults under load, shutdown, fuzzed upstream answers",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Machine: {machine_description()}; lscpu: {lscpu()}. The client, the stub and the gate share it.",
        f"- Packages: {package_versions(PACKAGES)}",
        f"- Seeds: stub faults {args.seed}, bootstrap {args.seed} (2000 resamples, 95% percentile intervals); the fuzz"
        " examples are derandomized (the same on every run).",
        "- Gate: `gate serve` (one uvicorn worker, h11) started as `python -c 'from gate.cli.main import main; main()'"
        " serve --port P` with `GATE_MODEL=openai/stub`, the stub as `GATE_API_BASE` (direct HTTP transport), one"
        " client key, `GATE_MAX_RETRIES=0`, `GATE_MAX_CONCURRENCY=256`, `GATE_FAMILIARITY_CACHE=off`, the audit log"
        " on, no artifact for this model (uncalibrated mean of the signals).",
        "- Stub: `python -m benchmarks.stub_upstream --port P --fail-rate F --hang-rate H --delay-ms D --seed S`.",
    ]
    body = [*header]
    for title, lines in sections.items():
        body += ["", f"## {title}", "", *lines]
    path.write_text("\n".join(body) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2500, help="requests per load round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fail-rate", type=float, default=0.10)
    parser.add_argument("--hang-rate", type=float, default=0.05)
    parser.add_argument("--timeout-s", type=float, default=2.0, help="the gate's upstream timeout (a hang costs it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shutdown-requests", type=int, default=48)
    parser.add_argument("--shutdown-delay-ms", type=float, default=2000)
    parser.add_argument("--fuzz-examples", type=int, default=150)
    parser.add_argument("--out", type=Path, default=RESULTS / "reliability.md")
    args = parser.parse_args()
    command = " ".join(["python -m benchmarks.reliability", *sys.argv[1:]])
    sections: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="gate-reliability-") as directory:
        work = Path(directory)
        steps: list[tuple[str, Callable[[], list[str]]]] = [
            ("Load with upstream faults", lambda: load_lines(*load_with_faults(args, work), args)),
            ("SIGTERM with requests in flight", lambda: shutdown_lines(shutdown(args, work), args)),
            ("Fuzzed upstream answers", lambda: fuzz_lines(fuzz(args, work), args)),
        ]
        for title, step in steps:
            began = time.perf_counter()
            print(f"{title} ...", file=sys.stderr, flush=True)
            sections[title] = step()
            print(f"  {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    sections["Load with upstream faults"][:0] = [
        f"{args.rounds} rounds of {args.requests} requests at concurrency {args.concurrency} after a {args.warmup}-"
        f"request warm-up; stub: {args.fail_rate:.0%} of upstream calls answered 500, {args.hang_rate:.0%} never"
        f" answered (the gate's upstream timeout: {args.timeout_s:g} s); signals `logprob_min` and `consistency`"
        " (two upstream calls per request: the answer, then 5 samples in one call). Latency is the client's, end to"
        " end; cells are the statistic on all requests of the round with its 95% bootstrap interval.",
        "",
    ]
    write(args.out, sections, args, command)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
