"""Operator tooling: `ghcr2ecr create-app`, `deploy` and `destroy` (run on an operator's machine, never in AWS)."""
