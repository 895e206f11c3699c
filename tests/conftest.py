"""Shared fixtures: each stand-in's fixtures live in one plugin module under tests/support/."""

import os

# app.py wires its queue and copy project at import, from the stage's configuration (`ghcr2ecr deploy` writes
# both); the tests import it as stage dev is committed in .chalice/config.json.
os.environ.setdefault("SYNC_QUEUE_NAME", "ghcr2ecr-dev-sync.fifo")
os.environ.setdefault("CODEBUILD_PROJECT", "ghcr2ecr-dev-copy")

pytest_plugins = [
    "tests.support.registry_fixtures",
    "tests.support.app_fixtures",
    "tests.support.ops_fixtures",
]
