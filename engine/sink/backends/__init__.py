"""engine.sink.backends."""
