"""``python -m engine.cli``."""

from engine.cli import app

app()
