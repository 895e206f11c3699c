"""Fixtures for real local registries (filled in by the registry stand-ins)."""
