"""JSON-lines logs and CloudWatch EMF counters, via aws-lambda-powertools.

Measured with `python -X importtime` (Python 3.11): `aws_lambda_powertools.logging` ~30-40 ms and
`.metrics` ~30 ms cumulative, most of it shared; the route's whole import stays far under the 300 ms
budget (see bench/webhook.py), so the well-kept Logger and Metrics are used instead of hand-written ones.

Nothing secret is ever passed to these functions: callers log ids, names and digests only.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

SERVICE = "ghcr2ecr"
NAMESPACE = "ghcr2ecr"

# One JSON object per line, on stdout (Lambda sends it to CloudWatch Logs).
logger = Logger(service=SERVICE)


def bind(**fields: Any) -> None:
    """Attach fields (delivery, installation, package, digest, ...) to every following log line."""
    logger.append_keys(**{k: v for k, v in fields.items() if v is not None})


def unbind_all() -> None:
    """Drop the fields of the previous request or message (a warm Lambda reuses the logger)."""
    logger.clear_state()


@functools.cache
def _metrics() -> Metrics:
    from aws_lambda_powertools import Metrics  # first counter only: not on the route's import path

    return Metrics(namespace=NAMESPACE, service=SERVICE)


def count(name: str, amount: int = 1, **dimensions: str) -> None:
    """Emit one CloudWatch EMF count (e.g. `count("SyncsQueued")`, `count("Failures", reason="suspended")`).

    Dimensions must come from a small fixed set (reason codes, not free text): each value is a metric.
    """
    metrics = _metrics()
    for key, value in dimensions.items():
        metrics.add_dimension(name=key, value=value)
    metrics.add_metric(name=name, unit="Count", value=amount)
    metrics.flush_metrics()  # prints one EMF JSON line and clears dimensions
