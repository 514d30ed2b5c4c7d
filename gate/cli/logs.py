"""Logging for the ``gate`` commands: one format on stderr, at the configured level."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: str) -> None:
    """Send log records at ``level`` and above (``"debug"`` ... ``"error"``) to stderr, one line each."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
