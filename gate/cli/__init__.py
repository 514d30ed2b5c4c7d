"""The gate command: one module per command; main assembles them."""
