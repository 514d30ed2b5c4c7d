"""`gate score` and `gate calibrate --collect-only` with `--ray ADDRESS`, on a real local Ray instance (2 CPUs).

The upstream is the stub OpenAI-compatible server on loopback, answering by a hash of each request, so the
scoring is deterministic and the Ray output can be compared with the local one line by line. Most Ray runs
are the real command in a subprocess (its own Ray driver, as a user's would be) joining the instance this
module starts once: starting Ray is the slow part (5-15 s on 2 busy cores).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.config import Settings
from gate.offline.ray_batch import worker_settings
from tests.stub_upstream import StubState, stub_upstream

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-ray-canary-5f1e"  # the upstream key: it must reach the workers, and no log
ANSWERS = ("Paris", "Rome", "Yes", "No", "I am 80% sure: Paris")
LINES = 20


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """A fixed answer per request content: the same request gets the same answer, wherever it comes from."""
    text = json.dumps(request.get("messages") or request.get("prompt"), sort_keys=True)
    return {"content": ANSWERS[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(ANSWERS)]}


@pytest.fixture(scope="module")
def ray_dir() -> Iterator[Path]:
    """The local instance's temp dir (its logs among them); short, because Ray's socket paths must stay short."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    yield temp
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(ray_dir: Path) -> Iterator[str]:
    """A local Ray instance (2 CPUs, no dashboard); yields its address."""
    context = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(ray_dir), logging_level=logging.WARNING)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, StubState]]:
    state = StubState(reply=_reply)
    with stub_upstream(state) as url:
        yield url, state


@pytest.fixture
def config(tmp_path: Path, upstream: tuple[str, StubState]) -> Path:
    # no familiarity cache: which line finds a concept cached would depend on the order lines are scored in
    path = tmp_path / "gate.yaml"
    path.write_text(
        f"model: openai/stub\napi_base: {upstream[0]}\napi_key: {SECRET}\nfamiliarity_cache: 'off'\n"
        f"cache_dir: {tmp_path / 'cache'}\nsignals: [logprob_min, consistency, p_true, verbalized]\n",
        encoding="utf-8",
    )
    return path


def _inputs(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(LINES):
            line = {"id": f"q{i}", "question": f"What is the capital of country {i}?", "response": ANSWERS[i % 2],
                    "logprobs": [-0.1 * (i % 7), -0.05], "samples": ["Paris"] * (i % 3), "team": i % 4}
            handle.write(json.dumps(line) + "\n")
    return path


def _gate(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `gate` command in its own process (its own Ray driver), on this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "from gate.cli.main import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, check=False)


def _local(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _rows(path: Path) -> list[dict[str, Any]]:
    return _without_seconds(path.read_text(encoding="utf-8").splitlines())


def _without_seconds(lines: list[str]) -> list[dict[str, Any]]:
    """Output or cache lines without wall-clock seconds (the one field that is a timing, not a score)."""
    rows = [json.loads(line) for line in lines]
    for row in rows:
        for cost in _costs(row):
            cost.pop("seconds")
    return rows


def _costs(row: dict[str, Any]) -> list[dict[str, Any]]:
    if "gate" in row:
        return [row["gate"]["cost"], row["gate"]["gate_cost"]]
    return [row["answer_cost"], *(signal["cost"] for signal in row["signals"].values())]


def test_ray_resumes_a_partial_output_into_exactly_the_local_output(
    tmp_path: Path, cluster: str, ray_dir: Path, config: Path, upstream: tuple[str, StubState]
) -> None:
    source = _inputs(tmp_path / "in.jsonl")
    _local("score", str(source), "-o", str(tmp_path / "local.jsonl"), "-c", str(config), "--sample-more", "2")
    done = (tmp_path / "local.jsonl").read_text(encoding="utf-8").splitlines()
    partial = tmp_path / "ray.jsonl"
    partial.write_text("\n".join(done[:7]) + "\n" + done[7][:40], encoding="utf-8")  # interrupted mid-line
    result = _gate("score", str(source), "-o", str(partial), "-c", str(config), "--sample-more", "2",
                   "--ray", cluster, "--concurrency", "3")
    assert result.returncode == 0, result.stderr
    assert f"scored {LINES - 7} line(s); 7 already in the output" in result.stdout
    remote = _rows(partial)
    assert [row["id"] for row in remote] == [f"q{i}" for i in range(LINES)]  # input order; the torn line replaced
    assert remote == _rows(tmp_path / "local.jsonl")  # 13 lines scored on the workers, as the local path scored them
    assert len({row["gate"]["probability"] for row in remote[7:]}) > 3  # scored, not copied
    sent = {name.lower(): value for name, value in upstream[1].headers[-1].items()}
    assert sent["authorization"] == f"Bearer {SECRET}"  # the key reached the workers
    assert SECRET not in result.stdout + result.stderr
    logs = [path for path in ray_dir.rglob("*") if path.is_file() and path.suffix in {".log", ".out", ".err"}]
    assert logs and not [path for path in logs if SECRET.encode() in path.read_bytes()]


def test_ray_local_scores_every_line_as_the_local_path_does(tmp_path: Path, cluster: str, config: Path) -> None:
    # in this process, already joined to the module's instance: `--ray local` uses that connection (starting a
    # second instance would double this file's time; the command's own start of one is what the other tests'
    # subprocesses and benchmarks/ray_batch.py exercise against a running instance)
    source = _inputs(tmp_path / "in.jsonl")
    _local("score", str(source), "-o", str(tmp_path / "local.jsonl"), "-c", str(config))
    _local("score", str(source), "-o", str(tmp_path / "ray.jsonl"), "-c", str(config), "--ray", "local",
           "--ray-actors", "2", "--concurrency", "2")
    remote = _rows(tmp_path / "ray.jsonl")
    assert [row["id"] for row in remote] == [f"q{i}" for i in range(LINES)]
    assert remote == _rows(tmp_path / "local.jsonl")
    assert ray.is_initialized()  # the connection it found is left open for its owner


def test_signal_collection_on_ray_caches_the_same_rows(tmp_path: Path, cluster: str, config: Path) -> None:
    questions = tmp_path / "qa.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": f"x{i}", "question": f"Capital of place {i}?", "answers": [ANSWERS[i % 3]]}) + "\n"
                for i in range(8)),
        encoding="utf-8",
    )
    common = ["calibrate", "-d", str(questions), "--collect-only", "-c", str(config), "-o", str(tmp_path / "a.json")]
    _local(*common, "--cache", str(tmp_path / "local.signals.jsonl"))
    result = _gate(*common, "--cache", str(tmp_path / "ray.signals.jsonl"), "--ray", cluster, "--ray-actors", "2")
    assert result.returncode == 0, result.stderr
    assert "cached 8 graded questions" in result.stderr

    def by_id(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head, *rows = path.read_text(encoding="utf-8").splitlines()
        return json.loads(head), sorted(_without_seconds(rows), key=lambda row: row["id"])

    assert by_id(tmp_path / "ray.signals.jsonl") == by_id(tmp_path / "local.signals.jsonl")


@pytest.mark.parametrize("form", ["HOST:PORT", "ray://HOST:PORT", "auto"])
def test_an_unreachable_cluster_is_one_line_and_a_failed_exit(
    tmp_path: Path, config: Path, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _inputs(tmp_path / "in.jsonl")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    address = form.replace("HOST:PORT", closed)
    monkeypatch.setenv("RAY_ADDRESS", closed)  # what auto resolves to
    result = CliRunner().invoke(app, ["score", str(source), "-o", str(tmp_path / "o.jsonl"), "-c", str(config),
                                      "--ray", address])
    assert result.exit_code == 2
    shown = closed if form == "auto" else address
    assert result.output.strip().splitlines() == [f"error: could not reach the Ray cluster at '{shown}': "
                                                  "Connection refused"]
    assert not (tmp_path / "o.jsonl").exists() or not (tmp_path / "o.jsonl").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray", "nowhere"], "is not a Ray address"),
        (["--ray-actors", "2"], "--ray-cpus and --ray-actors go with --ray ADDRESS"),
        (["--ray", "auto", "--ray-cpus", "2"], "--ray-cpus (a positive count) goes with --ray local only"),
    ],
)
def test_ray_options_that_cannot_work_are_refused(tmp_path: Path, config: Path, args: list[str], message: str) -> None:
    source = _inputs(tmp_path / "in.jsonl")
    result = CliRunner().invoke(app, ["score", str(source), "-o", str(tmp_path / "o.jsonl"), "-c", str(config), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_without_ray_installed_the_error_names_the_extra(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    source = _inputs(tmp_path / "in.jsonl")
    result = CliRunner().invoke(app, ["score", str(source), "-o", str(tmp_path / "o.jsonl"), "-c", str(config),
                                      "--ray", "local"])
    assert result.exit_code == 2
    assert "pip install 'llm-gate[ray]'" in result.output and "Traceback" not in result.output


def test_workers_rebuild_the_settings_as_given_secrets_included(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(model="openai/x", api_base="http://127.0.0.1:1/v1", api_key=SECRET, max_tokens=7)
    values = worker_settings(settings)
    monkeypatch.setenv("GATE_MAX_TOKENS", "99")  # the worker's own environment does not override the driver's
    rebuilt = Settings.model_validate(values)
    assert rebuilt == settings and rebuilt.max_tokens == 7
    assert rebuilt.api_key is not None and rebuilt.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(values) and SECRET not in str(values)


def test_a_worker_that_cannot_build_its_gate_reports_the_error_it_met(cluster: str, tmp_path: Path) -> None:
    from gate.factory import SHIPPED_ARTIFACT, create_gate
    from gate.offline.ray_batch import _RemoteGates

    settings = Settings(model="openai/other", api_base="http://127.0.0.1:1/v1", artifact=SHIPPED_ARTIFACT,
                        cache_dir=tmp_path)
    with pytest.raises(ValueError) as here:
        create_gate(settings)
    gates = _RemoteGates(ray, settings, actors=1, concurrency=1, calibrated=True)
    try:
        with pytest.raises(ValueError) as there:
            gates.wait_ready()
    finally:
        gates.close()
    assert str(there.value) == str(here.value)  # the artifact refused on the worker, as it is locally
