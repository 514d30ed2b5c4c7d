"""The one-pass familiarity of a concept: how little the model is surprised to see it named.

The paper's SELF-FAMILIARITY asks the model to explain a concept and then to recover it from the masked
explanation (several generations per concept). This variant costs one forward pass: the concept is
forced as the continuation of a neutral context (an encyclopedia title), and its score is
``exp(mean token log-prob)``. A model that has seen an entity often gives its name a high probability
there; one it has never met gives it the probability of an arbitrary string of sub-words. It is the
"surprise" method of :class:`estimators.familiarity.Familiarity`; the raw token log-probs are kept so
other aggregates (first token, minimum) can be compared offline.
"""

from __future__ import annotations

import math
import time
from typing import Any

from estimators.base import Cost, SupportsContinuationLogprobs

SURPRISE_CONTEXT = "An encyclopedia article.\n\nTitle:"
"""The neutral context the concept is forced after; part of the method (changing it changes the scores)."""


async def surprise_score(
    llm: SupportsContinuationLogprobs, concept: str
) -> tuple[float | None, Cost, dict[str, Any]]:
    """``exp(mean log-prob)`` of ``concept`` forced after :data:`SURPRISE_CONTEXT`, its cost, and its trail.

    The score is ``None`` when the backend returned no usable log-probs.
    """
    started = time.perf_counter()
    values = await llm.continuation_logprobs(SURPRISE_CONTEXT, " " + concept)
    cost = Cost(calls=1, completion_tokens=len(values), seconds=time.perf_counter() - started)
    if not values or any(not math.isfinite(v) for v in values):
        return None, cost, {"concept": concept, "token_logprobs": list(values)}
    score = math.exp(sum(values) / len(values))
    return score, cost, {"concept": concept, "token_logprobs": [round(v, 4) for v in values], "score": score}
