"""The gate inside other tools: a LiteLLM proxy guardrail and the embedded model as a litellm provider."""
