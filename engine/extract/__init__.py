"""engine.extract."""
