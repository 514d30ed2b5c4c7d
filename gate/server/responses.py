"""The proxy's JSON response: UTF-8 as usual, and still valid when upstream text holds a lone surrogate.

JSON may carry any UTF-16 code unit as a ``\\uXXXX`` escape, so an upstream's answer or error message can
bring a lone surrogate (``"\\ud800"``) that UTF-8 cannot encode: Starlette's ``JSONResponse`` then raised
while rendering, and the client got a 500 for an answer the gate had served. Such a body is written with
every non-ASCII character escaped instead, as the SSE chunks always are: the client reads the same string.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class GateJSONResponse(JSONResponse):
    """``JSONResponse`` that escapes non-ASCII text when it cannot be UTF-8 (see the module docstring)."""

    def render(self, content: Any) -> bytes:
        """The body: compact JSON, UTF-8, falling back to ASCII escapes for a lone surrogate; no NaN."""
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")
