"""Proxy overhead: what `gate serve` and the LiteLLM proxy add in front of an instant upstream, with wrk.

Run: ``.venv/bin/python -m benchmarks.overhead [--duration 8] [--repeats 3] [--concurrency 1 16 64] [--workers 2]
[--pause-ms 200]``
(needs ``wrk``: ``apt-get install wrk``).

One stub upstream (``benchmarks/stub_upstream.py``: fixed answer and log-probs, no work) serves every
target, so what differs between rows is only the proxy in front of it:

- ``direct``: wrk straight at the stub (the floor);
- ``gate off``: ``gate serve`` in ``mode: off`` (pure pass-through; direct HTTP transport, the default for
  an OpenAI-compatible ``api_base``);
- ``gate observe (free signals)``: ``mode: observe`` with only the free token-probability signals;
- ``gate off via litellm``: the same pass-through with ``transport: litellm`` (what the gate cost before the
  direct transport; kept to show where the time went);
- ``gate off, N workers`` / ``gate observe (free signals), N workers``: ``gate serve --workers N``
  (``--workers``, default 2: this machine's cores; 0 skips them);
- ``LiteLLM proxy``: ``litellm --config`` (one worker) forwarding to the same stub.

Each (target, concurrency) is run ``--repeats`` times for ``--duration`` seconds after a warm-up; the
table reports the median over repeats with the range. Added latency is the target's p50 (p99) minus the
direct p50 (p99) of the same repeat. With ``--pause-ms``, the stub and the gates are run once more at the
highest concurrency with each connection pausing between requests (paced load, below capacity).
Everything (wrk, stub, proxies) shares this machine's cores, which is itself part of what is measured:
read the numbers as "on this machine", not as a proxy's capacity.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import machine_description, package_versions

RESULTS = Path(__file__).parent / "results"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
BIN = Path(sys.executable).parent


GATE_KEY = "sk-gate-bench-7f3c9a1e5b2d4f6a8c0e"
LITELLM_KEY = "sk-litellm-bench-2b4d6f8a0c1e3f5a7b9d"


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: dict[str, object]
    key: str | None = None  # sent as a Bearer token


@dataclass(frozen=True)
class Run:
    """One wrk run's summary."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int  # non-2xx answers plus socket errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(
    command: list[str],
    *,
    ready_url: str,
    env: dict[str, str] | None = None,
    log: Path,
    headers: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends (then SIGINT, unless it has exited); wait until ``ready_url`` answers
    200 (up to two minutes, with ``headers``); yields the process."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
                try:
                    if httpx.get(ready_url, timeout=2, headers=headers).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} not ready after 120 s:\n{log.read_text()[-2000:]}")
                time.sleep(0.3)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def gate_server(port: int, stub: str, transport: str, workers: int = 1) -> tuple[list[str], dict[str, str]]:
    env = {
        "GATE_MODEL": "openai/stub",
        "GATE_API_BASE": stub,
        "GATE_API_KEY": "sk-stub",
        "GATE_TRANSPORT": transport,
        "GATE_SIGNALS": '["logprob_mean", "logprob_min"]',  # observe computes only the free signals
        "GATE_MAX_CONCURRENCY": "1000",  # above wrk's connections: no 429s in a throughput test
        "GATE_MAX_RETRIES": "0",
        "GATE_LOG_LEVEL": "warning",
        "GATE_API_KEYS": json.dumps([GATE_KEY]),  # clients authenticate, as in production
        "GATE_ALLOWED_MODES": '["off", "observe", "enforce"]',  # the rows compare the modes per request
    }
    return [str(BIN / "gate"), "serve", "--port", str(port), "--workers", str(workers)], env


LITELLM_CONFIG = """\
model_list:
  - model_name: stub
    litellm_params: {{model: openai/stub, api_base: "{stub}", api_key: sk-stub}}
"""


def wrk_script(target: Target, pause_ms: int = 0) -> str:
    """wrk's Lua script for ``target``: its body posted as JSON, and with ``pause_ms`` > 0 a pause after each
    response of a uniform random 0 to 2 * ``pause_ms`` (wrk's ``delay()`` hook).

    A random pause rather than a fixed one: with a fixed one the connections stay in lock-step and each
    round arrives as one burst of ``connections`` requests, queueing like the unpaced runs.
    """
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(target.body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        + (f'wrk.headers["Authorization"] = "Bearer {target.key}"\n' if target.key else "")
        + (f"math.randomseed(1)\nfunction delay()\n  return math.random(0, {2 * pause_ms})\nend\n" if pause_ms else "")
    )


def wrk(target: Target, *, connections: int, seconds: float, script_dir: Path, pause_ms: int = 0) -> Run:
    """One wrk run against ``target`` (``pause_ms``: see :func:`wrk_script`)."""
    script = script_dir / f"{re.sub(r'[^a-z0-9]+', '-', target.name.lower())}-{pause_ms}.lua"
    script.write_text(wrk_script(target, pause_ms))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s", "-s", str(script)]
    output = subprocess.run([*command, target.url], capture_output=True, text=True, check=True).stdout
    try:
        return parse_wrk(output)
    except ValueError as exc:  # kept as a failed run (NaN latencies) rather than losing the whole benchmark
        print(exc, flush=True)
        requests = re.search(r"(\d+) requests in", output)
        return Run(0.0, float("nan"), float("nan"), int(requests.group(1)) if requests else 0, 0)


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], check=False, capture_output=True, text=True)
    return (done.stdout + done.stderr).splitlines()[0].split(" Copyright")[0]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Run:
    """The numbers we report from wrk's text output (``--latency``)."""
    percentile = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE))
    if "50" not in percentile or "99" not in percentile:
        raise ValueError(f"wrk printed no latency distribution:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failures = int(non_2xx.group(1)) if non_2xx else 0
    failures += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return Run(rps, _ms(percentile["50"]), _ms(percentile["99"]), requests, failures)


def measure(
    targets: list[Target],
    concurrency: list[int],
    *,
    seconds: float,
    repeats: int,
    script_dir: Path,
    pause_ms: int = 0,
    warm_up: bool = True,
) -> dict[tuple[str, int], list[Run]]:
    """Every target at every concurrency, ``repeats`` times, targets interleaved within a repeat."""
    runs: dict[tuple[str, int], list[Run]] = {}
    for target in targets if warm_up else []:  # warm-up: imports, connection pools, first-call caches
        wrk(target, connections=4, seconds=2, script_dir=script_dir)
    for repeat in range(repeats):
        for connections in concurrency:
            for target in targets:
                run = wrk(target, connections=connections, seconds=seconds, script_dir=script_dir, pause_ms=pause_ms)
                runs.setdefault((target.name, connections), []).append(run)
                print(f"repeat {repeat + 1} c={connections:>3} pause={pause_ms} {target.name:<28} {run}", flush=True)
    return runs


def _median_range(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def table(runs: dict[tuple[str, int], list[Run]], targets: list[Target], concurrency: list[int]) -> list[str]:
    lines = [
        "| target | connections | requests/s | p50 ms | p99 ms | added p50 ms | added p99 ms | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for connections in concurrency:
        direct = runs[("direct", connections)]
        for target in targets:
            done = runs[(target.name, connections)]
            added50 = [run.p50_ms - base.p50_ms for run, base in zip(done, direct, strict=True)]
            added99 = [run.p99_ms - base.p99_ms for run, base in zip(done, direct, strict=True)]
            lines.append(
                f"| {target.name} | {connections} | {_median_range([r.rps for r in done], '.0f')}"
                f" | {_median_range([r.p50_ms for r in done], '.2f')}"
                f" | {_median_range([r.p99_ms for r in done], '.2f')}"
                f" | {'-' if target.name == 'direct' else _median_range(added50, '.2f')}"
                f" | {'-' if target.name == 'direct' else _median_range(added99, '.2f')}"
                f" | {sum(r.failures for r in done)}/{sum(r.requests for r in done)} |"
            )
    return lines


def added_p50(runs: dict[tuple[str, int], list[Run]], name: str, connections: int) -> float:
    """Median over repeats of the target's p50 minus the direct p50 of the same repeat."""
    pairs = zip(runs[(name, connections)], runs[("direct", connections)], strict=True)
    return statistics.median(run.p50_ms - base.p50_ms for run, base in pairs)


def _gates(workers: int) -> list[tuple[str, str]]:
    """(row-name suffix, label) of the one-worker gate and, when measured, the N-worker one."""
    return [("", "one worker")] + ([(f", {workers} workers", f"{workers} workers")] if workers > 1 else [])


def _latency_verdict(runs: dict[tuple[str, int], list[Run]], suffix: str, connections: int) -> str:
    """Added p50 of pass-through and observe against their targets (2 ms and 5 ms)."""
    off = added_p50(runs, "gate off" + suffix, connections)
    observe = added_p50(runs, "gate observe (free signals)" + suffix, connections)
    return (
        f"pass-through adds {off:.2f} ms at p50 (target <= 2 ms: {_against(off, 2)});"
        f" observe with the free signals adds {observe:.2f} ms (target <= 5 ms: {_against(observe, 5)})"
    )


def _against(added_ms: float, limit_ms: float) -> str:
    return "met" if added_ms <= limit_ms else f"missed by {added_ms - limit_ms:.2f} ms"


def paced_verdicts(runs: dict[tuple[str, int], list[Run]], connections: int, pause_ms: int, workers: int) -> list[str]:
    """Added p50 against the targets when the clients, not the server, set the pace."""
    lines = []
    for suffix, label in _gates(workers):
        rate = statistics.median(run.rps for run in runs[("gate off" + suffix, connections)])
        lines.append(
            f"- {label}, {connections} connections pausing {pause_ms} ms on average (~{rate:.0f} req/s):"
            f" {_latency_verdict(runs, suffix, connections)}."
        )
    return lines


def verdicts(runs: dict[tuple[str, int], list[Run]], concurrency: list[int], workers: int = 1) -> list[str]:
    """The issue's targets, with the measured value next to each."""

    def rps(name: str, connections: int) -> float:
        return statistics.median(run.rps for run in runs[(name, connections)])

    lines = []
    for suffix, label in _gates(workers):
        for connections in concurrency:
            ratio = rps("gate off" + suffix, connections) / rps("LiteLLM proxy", connections)
            lines.append(
                f"- {label}, {connections} connection(s): {_latency_verdict(runs, suffix, connections)};"
                f" pass-through throughput is {ratio:.2f}x the LiteLLM proxy's (target >= 1: "
                f"{'met' if ratio >= 1 else 'missed'})."
            )
    return lines


def plot(runs: dict[tuple[str, int], list[Run]], targets: list[Target], concurrency: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(targets)
    for index, target in enumerate(targets):
        xs = [c + (index - len(targets) / 2) * width for c in range(len(concurrency))]
        left.bar(
            xs,
            [statistics.median(r.rps for r in runs[(target.name, c)]) for c in concurrency],
            width,
            label=target.name,
        )
        right.bar(xs, [statistics.median(r.p50_ms for r in runs[(target.name, c)]) for c in concurrency], width)
    for axis, label in ((left, "requests per second (log scale)"), (right, "p50 latency (ms, log scale)")):
        axis.set_xticks(range(len(concurrency)), [f"{c} conn." for c in concurrency])
        axis.set_ylabel(label)
        axis.set_yscale("log")  # the stub answers 50x faster than any proxy: a linear axis hides the proxies
    left.legend(fontsize=8)
    figure.suptitle("Proxy overhead in front of an instant stub upstream (median of repeats)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument(
        "--workers", type=int, default=2, help="also measure `gate serve --workers N` (0: skip; default: 2)"
    )
    parser.add_argument(
        "--pause-ms", type=int, default=200,
        help="also run the gates at the highest concurrency with each connection pausing this long between"
        " requests (0: skip; default: 200)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "overhead.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian's package)")
    ports = {name: free_port() for name in ("stub", "gate", "gate_litellm", "gate_workers", "litellm")}
    stub = f"http://127.0.0.1:{ports['stub']}/v1"
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        work = Path(scratch)
        python = str(BIN / "python")
        stack.enter_context(
            process(
                [python, "-m", "benchmarks.stub_upstream", "--port", str(ports["stub"])],
                ready_url=f"{stub}/models",
                log=work / "stub.log",
            )
        )
        gates = [("gate", "direct", 1), ("gate_litellm", "litellm", 1)]
        if args.workers > 1:
            gates.append(("gate_workers", "direct", args.workers))
        for key, transport, workers in gates:
            command, env = gate_server(ports[key], stub, transport, workers)
            stack.enter_context(
                process(command, env=env, ready_url=f"http://127.0.0.1:{ports[key]}/readyz", log=work / f"{key}.log")
            )
        config = work / "litellm.yaml"
        config.write_text(LITELLM_CONFIG.format(stub=stub))
        litellm_env = {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MASTER_KEY": LITELLM_KEY,
        }
        stack.enter_context(
            process(
                [str(BIN / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(ports["litellm"])],
                env=litellm_env,
                ready_url=f"http://127.0.0.1:{ports['litellm']}/health/liveliness",
                log=work / "litellm.log",
            )
        )
        gate_url = f"http://127.0.0.1:{ports['gate']}/v1/chat/completions"
        targets = [
            Target("direct", f"{stub}/chat/completions", {"model": "stub", "messages": QUESTION}),
            Target(
                "gate off", gate_url, {"model": "openai/stub", "messages": QUESTION, "gate": {"mode": "off"}}, GATE_KEY
            ),
            Target(
                "gate observe (free signals)",
                gate_url,
                {"model": "openai/stub", "messages": QUESTION, "gate": {"mode": "observe"}},
                GATE_KEY,
            ),
            Target(
                "gate off via litellm",
                f"http://127.0.0.1:{ports['gate_litellm']}/v1/chat/completions",
                {"model": "openai/stub", "messages": QUESTION, "gate": {"mode": "off"}},
                GATE_KEY,
            ),
            Target(
                "LiteLLM proxy",
                f"http://127.0.0.1:{ports['litellm']}/v1/chat/completions",
                {"model": "stub", "messages": QUESTION},
                LITELLM_KEY,
            ),
        ]
        if args.workers > 1:
            workers_url = f"http://127.0.0.1:{ports['gate_workers']}/v1/chat/completions"
            targets[3:3] = [
                Target(
                    f"gate off, {args.workers} workers",
                    workers_url,
                    {"model": "openai/stub", "messages": QUESTION, "gate": {"mode": "off"}},
                    GATE_KEY,
                ),
                Target(
                    f"gate observe (free signals), {args.workers} workers",
                    workers_url,
                    {"model": "openai/stub", "messages": QUESTION, "gate": {"mode": "observe"}},
                    GATE_KEY,
                ),
            ]
        started = time.perf_counter()
        runs = measure(targets, args.concurrency, seconds=args.duration, repeats=args.repeats, script_dir=work)
        # The LiteLLM proxy (~25 req/s) would be saturated at any pace worth measuring: gates only.
        paced_targets = [t for t in targets if "litellm" not in t.name.lower()]
        paced_connections = max(args.concurrency)
        paced = (
            measure(paced_targets, [paced_connections], seconds=args.duration, repeats=args.repeats,
                    script_dir=work, pause_ms=args.pause_ms, warm_up=False)
            if args.pause_ms
            else {}
        )
        elapsed = time.perf_counter() - started
    plot_path = args.out.with_suffix(".png")
    plot(runs, targets, args.concurrency, plot_path)
    command = (
        f".venv/bin/python -m benchmarks.overhead --duration {args.duration:g} --repeats {args.repeats}"
        f" --concurrency {' '.join(map(str, args.concurrency))} --workers {args.workers} --pause-ms {args.pause_ms}"
    )
    paced_lines = [
        f"## Paced load: {paced_connections} connections, each pausing {args.pause_ms} ms on average between requests",
        "",
        "Above, every connection sends its next request the moment the last one is answered, so at 16 and 64"
        " connections each server runs at its capacity and the added latency is mostly queueing: the gate's"
        " own work multiplied by the queue in front of it. Here the clients set the pace (wrk's `delay()` hook:"
        f" a uniform random pause of 0 to {2 * args.pause_ms} ms after each response, so that the connections"
        " do not fall into lock-step bursts) and the servers have idle time, which is closer to how a proxy in"
        " front of a real model is loaded.",
        "",
        *table(paced, paced_targets, [paced_connections]),
        "",
        *paced_verdicts(paced, paced_connections, args.pause_ms, args.workers),
        "",
    ] if paced else []
    text = "\n".join(
        [
            "# Proxy overhead in front of an instant upstream",
            "",
            f"- Command: `{command}` ({elapsed:.0f} s of load)",
            f"- Machine: {machine_description()}; wrk, the stub, both gates and the LiteLLM proxy share it.",
            f"- Packages: {package_versions(['fastapi', 'uvicorn', 'httpx', 'litellm', 'uvloop', 'httptools'])};"
            f" {wrk_version()}",
            f"- Load: wrk, 1 thread, keep-alive connections = the concurrency column, {args.duration:g} s per run,"
            f" {args.repeats} repeats (targets interleaved within a repeat), after a 2 s warm-up per target."
            " Cells: median over repeats [min, max]. Added = target minus direct, paired within a repeat.",
            '- Upstream: `benchmarks/stub_upstream.py` (fixed answer "Paris" with one log-prob; raw asyncio).',
            "- Gates: `gate serve` (one uvicorn worker unless the row says otherwise) with `GATE_MODEL=openai/stub`,"
            " the stub as `GATE_API_BASE`,"
            " signals limited to the free `logprob_mean` and `logprob_min`, no artifact for this model"
            " (uncalibrated mean of the signals), audit log off, one client API key. LiteLLM proxy: `litellm --config`,"
            " one worker, default settings, a master key (it refuses to start without one).",
            "",
            *table(runs, targets, args.concurrency),
            "",
            f"![requests per second and p50 latency]({plot_path.name})",
            "",
            "## Against the targets",
            "",
            *verdicts(runs, args.concurrency, args.workers),
            "",
            *paced_lines,
        ]
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
