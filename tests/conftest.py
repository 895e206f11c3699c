"""Shared fixtures: each stand-in's fixtures live in one plugin module under tests/support/."""

pytest_plugins = [
    "tests.support.registry_fixtures",
    "tests.support.app_fixtures",
    "tests.support.ops_fixtures",
]
