"""The embedded model through ``gate serve``, streamed claim by claim (one smoke test: a summary of a passage,
judged against it with no call besides the answer)."""

from __future__ import annotations

import openai
import pytest

from estimators.claims import split_claims
from gate.config import load_settings
from gate.server.app import create_app
from tests.test_server_client import running, wait_until_ready

PASSAGE = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was designed by the engineering "
    "company of Gustave Eiffel and built from 1887 to 1889 as the entrance to the 1889 World's Fair. It is 330 "
    "metres tall and was the tallest man-made structure in the world until 1930."
)


@pytest.mark.integration
def test_the_embedded_model_streams_a_summary_claim_by_claim():
    settings = load_settings(include_original=True, claims="strike")
    with running(create_app(settings), ready_within_s=120) as (url, _):
        wait_until_ready(url)
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model=settings.model,
            messages=[{"role": "user", "content": f"Summarise this passage in two sentences:\n\n{PASSAGE}"}],
            max_tokens=48,
            stream=True,
        )
        chunks = list(raw.parse())
    assert raw.headers["x-gate-claims"] == "streamed"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    view = chunks[-1].model_extra["gate"]
    assert view["claim_route"] == "grounded" and view["claims_policy"] == "strike" and view["claims"]
    kept = [c for c in view["claims"] if c["decision"] == "keep"]
    text = "".join(pieces)
    assert all(c["text"] in text for c in kept)  # what was kept went out; what was struck did not
    original = view["original"]
    for claim in view["claims"]:
        if claim["decision"] != "keep":
            assert original[claim["span"][0] : claim["span"][1]] not in text
    assert len(split_claims(original)) == len(view["claims"])
