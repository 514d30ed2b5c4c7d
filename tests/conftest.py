"""Shared fixtures: the real embedded model, loaded once per test session; a real redis-server per test."""

from __future__ import annotations

import pytest

from gate.backends.embedded.local import LocalLLM
from tests.redis_fixture import redis_server, redis_url  # noqa: F401  (a real redis-server per test that asks)


@pytest.fixture(scope="session")
def local_llm() -> LocalLLM:
    """The bundled Gemma 3 270M; the model file is assembled into the user cache on first use."""
    return LocalLLM()
