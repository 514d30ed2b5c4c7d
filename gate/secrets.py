"""Masking secrets in text the gate passes on (error messages from providers): known keys, and key-shaped tokens.

Providers echo credentials in their errors ("Incorrect API key provided: sk-..."), and the key a provider
saw is not always one the gate was configured with (litellm reads OPENAI_API_KEY and its kin itself). So
an upstream error's text is masked where it enters the gate, before anything logs or returns it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"  # OpenAI-style keys, project keys included
    r"|(?i:bearer)\s+[A-Za-z0-9_\-.=+/]{8,}"  # an Authorization header quoted back
    r"|(?i:basic)\s+(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}"  # Basic credentials (not "Basic auth")
)


def upstream_secrets(api_key: str | None, api_base: str | None) -> tuple[str, ...]:
    """The upstream's secrets in every form it may be quoted back in: the key, the password of ``api_base``
    (as written and decoded), and the Basic credentials an HTTP client sends for its user info."""
    secrets = [api_key] if api_key else []
    parts = urlsplit(api_base or "")
    if parts.password:
        user, password = unquote(parts.username or ""), unquote(parts.password)
        secrets += [parts.password, password, base64.b64encode(f"{user}:{password}".encode()).decode()]
    # longest first: a secret that contains another is masked whole
    return tuple(sorted(dict.fromkeys(secret for secret in secrets if secret), key=len, reverse=True))


def mask_known(text: str, known: Iterable[str | None]) -> str:
    """``text`` with every ``known`` (non-empty) secret replaced by ``***``."""
    for secret in known:
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with every ``known`` secret and every key-shaped token replaced by ``***``."""
    return KEY_SHAPED.sub(MASK, mask_known(text, known))
