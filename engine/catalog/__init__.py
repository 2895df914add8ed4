"""engine.catalog."""
