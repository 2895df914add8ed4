"""sfvault engine: extraction, repository, diffs, catalog and policies for Salesforce backups."""

__version__ = "0.1.0"

from engine.logs import configure_logging

configure_logging()
