"""engine.diff."""
