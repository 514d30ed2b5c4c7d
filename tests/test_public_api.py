"""The library API a user imports from ``gate``, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gate
from gate.assessment import Assessment
from gate.config import Settings, load_settings
from gate.factory import create_gate
from gate.pipeline import Gate

HEAVY = ("litellm", "torch", "llama_cpp", "fastapi", "sklearn", "numpy", "pydantic")


def test_the_public_names_import_from_gate() -> None:
    from gate import Assessment as PublicAssessment
    from gate import Gate as PublicGate
    from gate import Settings as PublicSettings
    from gate import create_gate as public_create_gate
    from gate import load_settings as public_load_settings

    assert PublicGate is Gate
    assert PublicAssessment is Assessment
    assert PublicSettings is Settings
    assert public_load_settings is load_settings
    assert public_create_gate is create_gate
    assert sorted(gate.__all__) == ["Assessment", "Gate", "Settings", "create_gate", "load_settings"]
    assert set(gate.__all__) <= set(dir(gate))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        gate.nothing_here  # noqa: B018 - the attribute access is the test


def test_importing_gate_loads_nothing_heavy() -> None:
    code = f"import sys, gate; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"import gate loaded {result.stdout.strip()}"
