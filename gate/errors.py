"""Small, data-only exceptions of the gate; the CLI and the server map them to messages in one place."""

from __future__ import annotations


class GateError(Exception):
    """Base class for errors the gate reports to users without a traceback."""


class MissingExtraError(GateError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, *, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{package} is not installed; install the '{extra}' extra: pip install 'llm-gate[{extra}]'")


class ConfigError(GateError, ValueError):
    """The configuration is invalid; the message names the field and the allowed values."""


class UpstreamError(GateError):
    """The model endpoint failed: unreachable, timed out, refused, or answered garbage."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        self.status = status
        self.retryable = retryable
        super().__init__(message)


class MalformedResponseError(UpstreamError):
    """The upstream answered 200 with something that is not an OpenAI-shaped completion."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the upstream answered a malformed completion: {reason}", status=502, retryable=False)


class UpstreamTooLargeError(UpstreamError):
    """The upstream's response is larger than ``max_upstream_bytes`` (the direct transport read no further)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the response is larger than this server's limit of {limit} bytes", status=502)


class UnknownModelError(UpstreamError, ValueError):
    """The model name is not one the provider layer knows or the upstream serves."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, retryable=False)


class LocalModelCrashError(UpstreamError):
    """The embedded model's process died (a crash in llama.cpp's native code); the next call restarts it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=502, retryable=False)


class StateUnavailableError(GateError):
    """The shared state (Redis) cannot be reached and ``state_failure`` is ``closed``: the server answers 503."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"the gate's shared state is unavailable ({what}); retry later")
