"""The documented path of the LiteLLM integration: ``guardrail: gate.litellm_guardrail.ConfidenceGuardrail``.

LiteLLM proxy configs name the guardrail and the embedded model's provider by this path
(``docs/litellm_guardrail.md``); the code lives in ``gate.integrations.litellm_guardrail``.
"""

from typing import Any

from gate.integrations import litellm_guardrail as _implementation
from gate.integrations.litellm_guardrail import ConfidenceGuardrail


def __getattr__(name: str) -> Any:
    """``local_provider`` and the rest, from the implementation (built when asked for, never at import)."""
    return getattr(_implementation, name)


__all__ = ["ConfidenceGuardrail"]
