"""Claims of an answer that is still being generated: which sentences are complete, and releasing them.

A streamed answer is split again each time text arrives, on the text up to its last white space (so no word is
cut: "the U.S. A" could still become "the U.S. Army"). A claim is complete once another claim starts after
it: the splitter has then seen the word that decides the boundary. Complete claims are judged one by one and
handed on in order (:class:`ClaimReady`); the last claim completes when the stream ends.

:class:`ClaimRelease` turns judged claims into the text a client reads under a claim policy, as soon as that
text can no longer change: under ``annotate`` and ``mark`` a claim that is not kept waits until some claim is
kept (an answer with no kept claim abstains, so none of it may have been sent); under ``strike`` a claim that is
not kept is never sent. The text released equals what :mod:`gate.claim_render` makes of the whole answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from estimators.base import Generation, Prompt
from estimators.claims import Claim, split_claims
from gate.claim_render import ClaimPolicy, mark
from gate.claim_verdict import ClaimVerdict

_LAST_SPACE = re.compile(r"\s(?=\S*$)")
_MARKER_ONLY = re.compile(r"[ \t]*(?:[-*•‣◦–—]|\d{1,3}[.)]|[a-zA-Z][)])[ \t]*")
_BLANK_RUNS = re.compile(r"\n{3,}")


@runtime_checkable
class StreamsText(Protocol):
    """An LLM that can stream its answer's text (the direct OpenAI-compatible transport, the embedded model)."""

    def stream_text(
        self,
        prompt: Prompt,
        *,
        temperature: float,
        max_tokens: int,
        options: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> AsyncIterator[str | Generation]:
        """The answer's text, piece by piece, as the model writes it; last, the whole answer as a ``Generation``
        (its usage, and its tokens' log-probs where the model gives them)."""
        ...


@dataclass(frozen=True)
class ClaimReady:
    """A judged claim, and the answer's text between the previous claim and this one (spaces, list markers)."""

    verdict: ClaimVerdict
    prefix: str


@dataclass
class CompleteClaims:
    """The stripped answer so far, and which of its claims are complete and not yet handed on."""

    raw: str = ""
    handed_on: int = 0

    def add(self, piece: str) -> list[Claim]:
        """Append ``piece``; the claims it completed, in order."""
        self.raw += piece
        text = self.answer
        space = _LAST_SPACE.search(text)
        if space is None:
            return []
        claims = split_claims(text[: space.start()])
        return self._take(claims[:-1])

    def finish(self) -> list[Claim]:
        """The stream ended: every claim not yet handed on is complete."""
        return self._take(split_claims(self.answer))

    @property
    def answer(self) -> str:
        """The answer as the pipeline keeps it (without leading or trailing white space)."""
        return self.raw.strip()

    def _take(self, claims: list[Claim]) -> list[Claim]:
        new = claims[self.handed_on :]
        self.handed_on = max(self.handed_on, len(claims))
        return new


@dataclass
class ClaimRelease:
    """The text a client may read so far of a streamed long answer, under one claim policy.

    ``observe``: the text is the model's own, released as it is judged (nothing waits: observe never withholds).
    """

    policy: ClaimPolicy
    mark_template: str
    observe: bool = False
    held: list[ClaimReady] = field(default_factory=list)
    kept: bool = False
    struck: int = 0
    sent: bool = False
    after_struck: bool = False
    pending: str = ""  # text before struck claims, sent with the next kept claim
    end: int = 0

    def add(self, ready: ClaimReady) -> str:
        """The text that may go out now that ``ready`` was judged (often empty)."""
        self.end = ready.verdict.end
        if self.policy == "strike" and not self.observe:
            return self._strike(ready)
        if ready.verdict.supported or self.observe:
            self.kept = True
            out = "".join(self._shown(item) for item in [*self.held, ready])
            self.held = []
            return self._sent(out)
        if self.kept:
            return self._sent(self._shown(ready))
        self.held.append(ready)
        return ""

    def tail(self, answer: str) -> str:
        """What follows the last claim in ``answer`` (text with no claim in it), once some claim went out."""
        return answer[self.end :] if self.sent and self.policy != "strike" else ""

    def _strike(self, ready: ClaimReady) -> str:
        # as gate.claim_render.struck: a struck claim goes with the spaces after it, and lines left with only a
        # list marker go too; the text before it stays (it may end a paragraph)
        prefix = ready.prefix.lstrip(" \t") if self.after_struck else ready.prefix
        self.after_struck = not ready.verdict.supported
        if not ready.verdict.supported:
            self.struck += 1
            self.pending += prefix
            return ""
        gap, self.pending = _tidy_gap(self.pending + prefix), ""
        return self._sent(gap + ready.verdict.text)

    def _shown(self, ready: ClaimReady) -> str:
        verdict = ready.verdict
        shown = verdict.text if verdict.supported or self.policy != "mark" or self.observe else None
        return ready.prefix + (shown if shown is not None else mark(verdict, self.mark_template))

    def _sent(self, text: str) -> str:
        if not self.sent:
            text = text.lstrip()
        self.sent = self.sent or bool(text)
        return text


def _tidy_gap(gap: str) -> str:
    """The text between two kept claims once struck ones are gone: no trailing spaces before a line break, no
    line left with only a list marker, at most one blank line (the current line's own marker stays)."""
    first, *lines = gap.split("\n")
    if not lines:
        return gap
    middle = [line.rstrip() for line in lines[:-1] if not _MARKER_ONLY.fullmatch(line)]
    return _BLANK_RUNS.sub("\n\n", "\n".join([first.rstrip(), *middle, lines[-1]]))
