"""Masking secrets in text the gate passes on (error messages from providers): known keys, and key-shaped tokens.

Providers echo credentials in their errors ("Incorrect API key provided: sk-..."), and the key a provider
saw is not always one the gate was configured with (litellm reads OPENAI_API_KEY and its kin itself). So
an upstream error's text is masked where it enters the gate, before anything logs or returns it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"  # OpenAI-style keys, project keys included
    r"|(?i:bearer)\s+[A-Za-z0-9_\-.=+/]{8,}"  # an Authorization header quoted back
)


def mask_known(text: str, known: Iterable[str | None]) -> str:
    """``text`` with every ``known`` (non-empty) secret replaced by ``***``."""
    for secret in known:
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with every ``known`` secret and every key-shaped token replaced by ``***``."""
    return KEY_SHAPED.sub(MASK, mask_known(text, known))
