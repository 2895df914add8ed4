"""A Salesforce org emulator: FastAPI over DuckDB. Imports nothing from engine."""
