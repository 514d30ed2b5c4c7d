"""LLM backends: litellm for any provider, a direct OpenAI-compatible client, the embedded model (factory)."""
