"""llm-gate: answer, hedge or abstain, by a calibrated probability that an LLM's answer is correct.

The library API::

    import asyncio

    from gate import create_gate, load_settings

    gate = create_gate(load_settings())  # the configured model, else the embedded Gemma 3 270M
    assessment = asyncio.run(gate.assess("Who wrote Hamlet?"))  # answer, decision, probability, reasons

These names are imported when first used, so that ``import gate`` (which every ``gate.*`` import runs
first, the embedded model's worker process included) loads nothing heavy and runs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.assessment import Assessment
    from gate.config import Settings, load_settings
    from gate.factory import create_gate
    from gate.pipeline import Gate

__all__ = ["Assessment", "Gate", "Settings", "create_gate", "load_settings"]

# public name -> the module that defines it
_EXPORTS = {
    "Assessment": "gate.assessment",
    "Gate": "gate.pipeline",
    "Settings": "gate.config",
    "create_gate": "gate.factory",
    "load_settings": "gate.config",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use; ``from gate import Gate`` works as usual."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
