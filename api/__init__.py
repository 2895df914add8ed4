"""FastAPI control plane (later issue)."""
