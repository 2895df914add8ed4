"""engine.policy."""
