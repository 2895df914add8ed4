"""engine.sink."""
