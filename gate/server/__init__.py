"""The OpenAI-compatible proxy: the app, the request handler, the wire format, guards, errors and metrics."""
