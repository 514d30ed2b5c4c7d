"""Long answers judged claim by claim: each sentence gets a probability and is kept, flagged or withheld.

- :mod:`gate.claims.verdict`: one claim's verdict, and the whole answer's decision derived from the claims.
- :mod:`gate.claims.judge`: which route judges the claims (grounded: ``claim_support``, no LLM call;
  closed-book: ``claim_consistency`` over sampled answers) and through which calibration.
- :mod:`gate.claims.render`: what the client reads under the ``claims`` policy (annotate, mark, strike).
- :mod:`gate.claims.stream`: releasing an answer sentence by sentence while it is still being generated.
"""
