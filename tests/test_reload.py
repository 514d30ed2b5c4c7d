"""Reload on SIGHUP: new and revoked keys take effect, a bad configuration is refused and the old one stays, and
no request fails meanwhile; a request in flight finishes with the policy it started with.

The first test runs the real ``gate serve`` (one worker) in a subprocess in front of the loopback stub upstream,
with a stream of concurrent clients, and manages keys with the real ``gate keys`` command.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from typer.testing import CliRunner

from gate.cli.main import app as gate_cli
from gate.config import load_settings
from gate.server.reload import reload
from gate.server.state import ServerState
from gate.tenants.keyfile import KeyFile, key_id, write_keys
from tests.stub_upstream import StubState, stub_upstream
from tests.test_serve_workers import children, free_port, wait_until_ready
from tests.test_server import MODEL
from tests.test_server_security import serving

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "api_base: {api_base}\nsignals: [logprob_min]\nmax_retries: 0\nmax_concurrency: 100\nlog_level: info\n"
TENANTS = (
    "keys_file: keys.yaml\ntenants:\n  - name: acme\n  - name: beta\n    mode: observe\n    allowed_modes: [observe]\n"
)


def status(url: str, key: str) -> int:
    body = {"model": "openai/stub", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code


def eventually(check: Callable[[], bool], within_s: float = 40) -> bool:
    """Whether ``check`` comes true within ``within_s`` (generous: the test machine may be busy)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes under the supervisor ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for child in children(pid):
        command = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
            found.append(child)
    return sorted(found)


def gate_keys(*args: str) -> str:
    result = CliRunner().invoke(gate_cli, ["keys", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_sighup_applies_new_and_revoked_keys_refuses_a_bad_config_and_drops_no_request(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith("GATE_")]:
        monkeypatch.delenv(name)
    keys = KeyFile.new()
    keys, streaming, _ = keys.added("acme")
    keys, doomed, _ = keys.added("beta")
    write_keys(tmp_path / "keys.yaml", keys)
    with stub_upstream(StubState()) as api_base:
        config = tmp_path / "gate.yaml"
        config.write_text(CONFIG.format(api_base=api_base) + TENANTS)
        port, log = free_port(), tmp_path / "serve.log"
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from gate.cli.main import main; main()", "serve", "--port", str(port)]
        command += ["--config", str(config), "-m", "openai/stub"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        stop, codes = threading.Event(), []

        def stream() -> None:
            while not stop.is_set():
                codes.append(status(url, streaming))

        try:
            wait_until_ready(f"{url}/readyz", process, log)
            with ThreadPoolExecutor(max_workers=4) as pool:
                clients = [pool.submit(stream) for _ in range(4)]
                fresh = gate_keys("add", "--tenant", "acme", "--config", str(config))
                assert status(url, fresh) == 401  # written, not yet loaded
                process.send_signal(signal.SIGHUP)
                assert eventually(lambda: status(url, fresh) == 200), log.read_text()[-3000:]

                assert status(url, doomed) == 200
                gate_keys("revoke", str(key_id(doomed)), "--config", str(config))
                process.send_signal(signal.SIGHUP)
                assert eventually(lambda: status(url, doomed) == 401), log.read_text()[-3000:]

                config.write_text(CONFIG.format(api_base=api_base) + "tenants: [{name: default}]\n")
                process.send_signal(signal.SIGHUP)
                assert eventually(lambda: "reload refused" in log.read_text()), log.read_text()[-3000:]
                assert status(url, fresh) == 200 and status(url, doomed) == 401  # the running config stayed
                time.sleep(0.5)
                stop.set()
                for client in clients:
                    client.result()
        finally:
            stop.set()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    assert len(codes) > 20 and set(codes) == {200}, sorted(set(codes))
    text = log.read_text()
    assert "configuration reloaded" in text and "reserved" in text
    assert all(secret not in text for secret in (streaming, doomed, fresh))
    assert process.returncode == 0, text[-3000:]


def test_a_request_in_flight_finishes_with_the_policy_it_started_with(tmp_path, caplog):
    keys, key, _ = KeyFile.new().added("acme")
    write_keys(tmp_path / "keys.yaml", keys)
    config = tmp_path / "gate.yaml"
    config.write_text(f"keys_file: {tmp_path / 'keys.yaml'}\ntenants:\n  - name: acme\n")
    headers = {"authorization": f"Bearer {key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "wait: Who wrote Hamlet?"}]}
    with serving(config_file=config) as served:
        state = served.app.state.server
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(
                httpx.post, served.url + "/chat/completions", json=body, headers=headers, timeout=30
            )
            assert eventually(lambda: len(served.llm.calls) > 0, within_s=10)  # the model is answering it now
            config.write_text(config.read_text() + "    mode: observe\n    allowed_modes: [observe]\n")
            assert asyncio.run(reload(state, lambda: load_settings(config_file=config, model=MODEL)))
            now = {**body, "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]}
            after = httpx.post(served.url + "/chat/completions", json=now, headers=headers, timeout=30)
            served.llm.release.set()
            before = in_flight.result()
        assert before.json()["gate"]["mode"] == "enforce" and after.json()["gate"]["mode"] == "observe"

        config.write_text("tenants: [{name: acme, thresholds: {abstain: 0.9, hedge: 0.1}}]\n")
        caplog.set_level(logging.INFO, logger="gate.server.reload")
        running = state.tenants
        assert not asyncio.run(reload(state, lambda: load_settings(config_file=config, model=MODEL)))
        assert state.tenants is running and "reload refused" in caplog.text and "must be at most hedge" in caplog.text

        config.write_text(f"keys_file: {tmp_path / 'keys.yaml'}\ntenants:\n  - name: acme\nmax_body_bytes: 4096\n")
        assert asyncio.run(reload(state, lambda: load_settings(config_file=config, model=MODEL)))
        assert "['max_body_bytes'] changed and take effect on restart only" in caplog.text
        assert state.settings.max_body_bytes != 4096


def test_a_reload_cannot_switch_authentication_off(tmp_path, caplog):
    config = tmp_path / "gate.yaml"
    config.write_text("api_keys: [sk-one]\n")
    state = ServerState.from_settings(load_settings(config_file=config, model=MODEL))
    config.write_text("api_keys: [sk-two]\n")
    assert asyncio.run(reload(state, lambda: load_settings(config_file=config, model=MODEL)))
    assert state.tenants.authenticate("sk-one") is None and state.tenants.authenticate("sk-two") is not None
    config.write_text("{}\n")
    assert not asyncio.run(reload(state, lambda: load_settings(config_file=config, model=MODEL)))
    assert state.tenants.auth and "would switch authentication off" in caplog.text


def test_with_workers_each_worker_reloads_in_place_on_its_own_sighup(tmp_path, monkeypatch):
    """``gate serve --workers 2``: SIGHUP to each worker (``pkill -HUP -P <supervisor>``) reloads it in place."""
    for name in [name for name in os.environ if name.startswith("GATE_")]:
        monkeypatch.delenv(name)
    write_keys(tmp_path / "keys.yaml", KeyFile.new())
    with stub_upstream(StubState()) as api_base:
        config = tmp_path / "gate.yaml"
        config.write_text(CONFIG.format(api_base=api_base) + TENANTS + f"metrics_dir: {tmp_path / 'metrics'}\n")
        port, log = free_port(), tmp_path / "serve.log"
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from gate.cli.main import main; main()", "serve", "--port", str(port)]
        command += ["--workers", "2", "--config", str(config), "-m", "openai/stub"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_ready(f"{url}/readyz", process, log)
            assert eventually(lambda: len(workers_of(process.pid)) == 2)
            # /readyz answered by one worker says nothing of the other: a worker still importing has no handler
            # yet, and a SIGHUP then ends it (uvicorn starts another). Both must have started their app.
            assert eventually(lambda: log.read_text().count("Application startup complete") == 2), log.read_text()
            before = workers_of(process.pid)
            fresh = gate_keys("add", "--tenant", "acme", "--config", str(config))
            assert status(url, fresh) == 401
            for worker in before:
                os.kill(worker, signal.SIGHUP)
            assert eventually(lambda: log.read_text().count("configuration reloaded") == 2), log.read_text()[-3000:]
            codes = [status(url, fresh) for _ in range(10)]
            workers = workers_of(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    assert codes == [200] * 10 and workers == before  # the same two workers: reloaded, not replaced
