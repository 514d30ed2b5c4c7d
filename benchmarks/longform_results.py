"""The long-form results file: each benchmark rewrites its own ``## <title>`` section and keeps the others."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "longform.md"
_HEADER = "# Long answers, claim by claim\n\nEach section is written by the benchmark its command names.\n"


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Replace the ``## title`` section of ``path`` with ``body`` (append it when absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    section = f"## {title}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text, encoding="utf-8")
