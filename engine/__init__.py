"""sfvault engine: extraction, repository, diffs, catalog and policies for Salesforce backups."""

__version__ = "0.1.0"
