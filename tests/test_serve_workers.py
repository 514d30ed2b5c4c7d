"""``gate serve --workers N``: worker processes on one port, the command line's settings in each, one audit log,
one /metrics.

The real command in a subprocess (uvicorn's supervisor and its spawned workers) in front of the loopback stub
upstream; the gate runs the cheap token-probability signal only, so the test is about the processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from gate.audit.report import audit_files
from tests.stub_upstream import StubState, stub_upstream
from tests.test_prom import parse, value

GATE = str(Path(sys.executable).with_name("gate"))
REQUESTS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"gate serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"gate serve not ready within {within_s:g} s:\n{log.read_text()[-3000:]}")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_two_workers_answer_every_request_and_share_one_audit_log(tmp_path):
    audit, shared = tmp_path / "audit.jsonl", tmp_path / "metrics"
    with stub_upstream(StubState()) as api_base:
        config = tmp_path / "gate.yaml"
        config.write_text(
            f"api_base: {api_base}\nsignals: [logprob_min]\nmax_retries: 0\nmax_concurrency: 100\n"
            f"audit_path: {audit}\naudit_max_bytes: 4096\naudit_backups: 1000\nmetrics_dir: {shared}\n"
        )
        port, log = free_port(), tmp_path / "serve.log"
        env = {name: value for name, value in os.environ.items() if not name.startswith("GATE_")}
        command = [GATE, "serve", "--port", str(port), "--workers", "2", "--config", str(config), "-m", "openai/stub"]
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz", process, log)
            assert len(children(process.pid)) >= 2  # uvicorn's supervisor and its two workers

            def ask(index: int) -> httpx.Response:
                body = {"model": "openai/stub", "messages": [{"role": "user", "content": f"Question {index}?"}]}
                return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30)

            with ThreadPoolExecutor(max_workers=8) as pool:
                responses = list(pool.map(ask, range(REQUESTS)))
            scrapes = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text for _ in range(6)]
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    assert [r.status_code for r in responses] == [200] * REQUESTS
    assert all(r.json()["gate"]["signals"].keys() == {"logprob_min"} for r in responses)  # the config reached them
    assert all(r.json()["model"] == "openai/stub" for r in responses)  # and so did --model
    records = [json.loads(line) for f in audit_files(audit) for line in f.read_text().splitlines()]
    assert len(audit_files(audit)) > 1  # the workers rotated the shared file
    assert sorted(r["request_id"] for r in records) == sorted(r.headers["x-request-id"] for r in responses)
    assert process.returncode == 0, log.read_text()[-3000:]
    # both workers served requests (each keeps its own file), and whichever one answers a scrape counts every
    # worker's, at once; the gauges sum the live workers' limits, and each worker's went when it stopped
    served = [answered(path) for path in sorted(shared.glob("counter_*.db"))]
    assert len(served) == 2 and min(served) > 0 and sum(served) == REQUESTS
    chat = {"route": "/v1/chat/completions", "mode": "enforce", "status": "200"}
    assert [value(parse(scrape), "gate_requests_total", **chat) for scrape in scrapes] == [REQUESTS] * len(scrapes)
    assert [value(parse(scrape), "gate_max_concurrency") for scrape in scrapes] == [2 * 100] * len(scrapes)
    assert not list(shared.glob("gauge_livesum_*.db"))


def answered(counters: Path) -> float:
    """The 200s of the chat route in one worker's counter file."""
    return sum(
        sample.value
        for family in MultiProcessCollector.merge([str(counters)], accumulate=False)
        for sample in family.samples
        if sample.name == "gate_requests_total" and sample.labels["route"] == "/v1/chat/completions"
    )
