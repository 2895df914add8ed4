"""Core dataclasses shared by every stage."""
