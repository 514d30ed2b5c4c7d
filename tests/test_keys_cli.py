"""``gate keys``: a key is printed once and stored only as a hash; list shows ids, revoke removes; bad input is one
line, no traceback; writes are atomic and keep the rest of the file."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.config import Settings
from gate.tenants.keyfile import read_keys
from gate.tenants.table import Tenants

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"gk_([0-9a-f]{8})\.[A-Za-z0-9_-]{43}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in [name for name in os.environ if name.startswith("GATE_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(
        "# the operator's config\ntenants:\n  - name: acme\n  - name: beta\nkeys_file: keys/gate.keys.yaml\n"
    )
    return path


def gate_keys(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["keys", *args])
    return result.exit_code, result.stdout, result.stderr


def test_add_prints_the_key_once_and_stores_only_its_hash(config):
    code, out, err = gate_keys("add", "--tenant", "acme", "--config", str(config))
    assert code == 0, err
    match = KEY.fullmatch(out.strip())
    assert match, out  # stdout holds the key alone
    key, key_id = match.group(0), match.group(1)
    path = config.parent / "keys" / "gate.keys.yaml"  # relative to the config file
    text = path.read_text()
    assert key not in text and key.partition(".")[2] not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"key {key_id} for tenant acme" in err and key not in err
    assert config.read_text().startswith("# the operator's config")  # the config itself is never rewritten
    tenants = Tenants.from_settings(Settings(config_file=config))
    found = tenants.authenticate(key)
    assert found is not None and found.name == "acme"
    assert tenants.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None

    code, listed, _ = gate_keys("list", "--config", str(config))
    assert code == 0 and key_id in listed and "acme" in listed and key not in listed
    assert read_keys(path).keys[0].hmac_sha256 not in listed


def test_revoke_removes_one_key_and_keeps_the_rest(config):
    added = [gate_keys("add", "-t", tenant, "-c", str(config))[1].strip() for tenant in ("acme", "beta", "acme")]
    path = config.parent / "keys" / "gate.keys.yaml"
    salt = read_keys(path).salt
    revoked_id = KEY.fullmatch(added[0]).group(1)  # type: ignore[union-attr]
    code, _, err = gate_keys("revoke", revoked_id, "-c", str(config))
    assert code == 0 and f"revoked key {revoked_id} of tenant acme" in err
    left = read_keys(path)
    assert left.salt == salt and [entry.id for entry in left.keys] == [KEY.fullmatch(k).group(1) for k in added[1:]]  # type: ignore[union-attr]
    tenants = Tenants.from_settings(Settings(config_file=config))
    assert tenants.authenticate(added[0]) is None
    assert [tenants.authenticate(key).name for key in added[1:]] == ["beta", "acme"]  # type: ignore[union-attr]
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_concurrent_writers_lose_no_key(tmp_path):
    """Six processes adding a key at once, as ``gate keys add`` does: the lock serialises read-modify-write.

    They run the command's own steps rather than the whole CLI, whose start costs seconds of CPU each here.
    """
    path = tmp_path / "gate.keys.yaml"
    add = (
        "import sys; from pathlib import Path; from gate.tenants.keyfile import locked, read_keys, write_keys\n"
        "path = Path(sys.argv[1])\n"
        "with locked(path):\n"
        "    keys, key, entry = read_keys(path).added('acme'); write_keys(path, keys)\n"
        "print(entry.id)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", add, str(path)], env=env, stdout=subprocess.PIPE) for _ in range(6)
    ]
    ids = [process.communicate(timeout=60)[0].decode().strip() for process in processes]
    assert [process.returncode for process in processes] == [0] * 6
    assert sorted(entry.id for entry in read_keys(path).keys) == sorted(ids)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--tenant", "nobody"], "no tenant 'nobody' in the configuration (tenants: acme, beta)"),
        (["revoke", "deadbeef"], "no key with id 'deadbeef'"),
        (["add", "--tenant", "acme", "--config", "/nonexistent/gate.yaml"], "config file /nonexistent/gate.yaml"),
    ],
)
def test_bad_input_is_one_line_without_traceback(config, args, message):
    if "--config" not in args:
        args = [*args, "--config", str(config)]
    code, out, err = gate_keys(*args)
    assert code == 2 and message in err and "Traceback" not in err + out
    assert err.startswith("error: ") and err.count("\n") == 1


def test_a_config_without_keys_file_or_with_a_broken_one_is_explained(tmp_path, config):
    bare = tmp_path / "bare.yaml"
    bare.write_text("tenants:\n  - name: acme\n")
    code, _, err = gate_keys("add", "-t", "acme", "-c", str(bare))
    assert code == 2 and "the configuration has no keys_file" in err
    path = config.parent / "keys" / "gate.keys.yaml"
    path.parent.mkdir()
    path.write_text("salt: [not, a, salt]\n")
    code, _, err = gate_keys("list", "-c", str(config))
    assert code == 2 and "is malformed" in err and "Traceback" not in err
    assert path.read_text() == "salt: [not, a, salt]\n"  # never overwritten by a failed command
    code, _, err = gate_keys("add", "-t", "acme", "-c", str(config))
    assert code == 2 and path.read_text() == "salt: [not, a, salt]\n"
