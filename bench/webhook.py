"""Benchmark the webhook route: cold import, warm latency, deliveries per second, with peers from the same run.

Run by hand: `.venv/bin/python bench/webhook.py [--requests 2000] [--imports 7]`.
- cold import of app.py (`python -X importtime`, fresh interpreters), next to `import boto3` and `import githubkit`;
- warm latency p50/p99 through the Lambda entry point (`app.app(api_gateway_event, context)`), signed
  tagged-index deliveries, (a) with the FIFO queue on a local moto server and (b) with the SQS call replaced
  by an in-memory recorder (the route's own cost);
- deliveries per second on one core (sequential, (b));
- peers: our HMAC check vs githubkit.webhooks.verify, our raw-field decision vs githubkit.webhooks.parse.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# app.py wires the names `ghcr2ecr deploy` writes into a stage: measured as stage dev is committed
os.environ.setdefault("SYNC_QUEUE_NAME", "ghcr2ecr-dev-sync.fifo")
os.environ.setdefault("CODEBUILD_PROJECT", "ghcr2ecr-dev-copy")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cold_import(module: str, runs: int) -> float:
    """Return the median cumulative `-X importtime` of `module` in fresh interpreters, in ms."""
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        last = [line for line in done.stderr.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
        times.append(int(last.split("|")[1]) / 1000)
    return statistics.median(times)


COLD_REQUEST = """
import json, sys, time
start = time.perf_counter()
import app
from chalice.local import LambdaContext
from chalicelib.webhook.events import sign
imported = time.perf_counter()
body = sys.stdin.buffer.read()
headers = {"content-type": "application/json", "x-github-event": "registry_package", "x-github-delivery": "cold-1",
           "x-hub-signature-256": sign(SECRET.encode(), body)}
event = {"resource": "/github/webhook", "path": "/github/webhook", "httpMethod": "POST", "headers": headers,
         "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
         "isBase64Encoded": False, "body": body.decode(),
         "requestContext": {"resourcePath": "/github/webhook", "httpMethod": "POST", "path": "/api/github/webhook"}}
response = app.app(event, LambdaContext("webhook", 256))
done = time.perf_counter()
assert response["statusCode"] == 202, response
print(json.dumps({"import": imported - start, "first": done - imported}), file=sys.stderr)
"""


def cold_first_request(body: bytes, secret: str, runs: int) -> tuple[float, float]:
    """Return median (import s, first request s) in fresh interpreters: SSM read, clients built, SQS write."""
    imports, firsts = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", COLD_REQUEST.replace("SECRET", repr(secret))], cwd=ROOT,
                              input=body, capture_output=True, check=True, env=os.environ.copy())
        result = json.loads(done.stderr.decode().strip().splitlines()[-1])
        imports.append(result["import"])
        firsts.append(result["first"])
    return statistics.median(imports), statistics.median(firsts)


def percentiles(samples: list[float]) -> str:
    """Format p50/p99/max of samples in ms."""
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return f"p50 {p(0.50):6.2f} ms   p99 {p(0.99):6.2f} ms   max {ordered[-1] * 1000:6.2f} ms"


def timed(call: Callable[[], Any], n: int) -> list[float]:
    """Run `call` n times; return each duration in seconds."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def api_gateway_event(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Return a REST API proxy event for POST /github/webhook, as API Gateway sends it to the Lambda."""
    return {
        "resource": "/github/webhook", "path": "/github/webhook", "httpMethod": "POST",
        "headers": {k.lower(): v for k, v in headers.items()}, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "isBase64Encoded": False, "body": body.decode(),
        "requestContext": {"resourcePath": "/github/webhook", "httpMethod": "POST", "path": "/api/github/webhook",
                           "stage": "api", "identity": {"sourceIp": "140.82.115.1"}},
    }


def main() -> int:
    """Run every measurement and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--imports", type=int, default=7)
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, one core, sequential\n")
    print("cold import (median of fresh interpreters, -X importtime cumulative)")
    for module in ("app", "boto3", "githubkit"):
        print(f"  import {module:<10} {cold_import(module, args.imports):7.1f} ms")

    import boto3
    from chalice.local import LambdaContext

    from chalicelib import aws
    from chalicelib.webhook import events
    from chalicelib.config import settings
    from standins.aws import MotoServer, aws_environment
    from tests.support.app_fixtures import RecordingSqs, WEBHOOK_SECRET, load_delivery

    delivery = load_delivery("multiplatform-tagged-index")
    secret = WEBHOOK_SECRET.encode()
    with MotoServer() as url, aws_environment(url):
        session = boto3.session.Session()
        session.client("ssm").put_parameter(Name="/bench/secret", Value=WEBHOOK_SECRET, Type="SecureString")
        queue_url = session.client("sqs").create_queue(QueueName="bench.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"]
        os.environ.update({"GITHUB_APP_ID": "1", "SYNC_QUEUE_URL": queue_url, "CODEBUILD_PROJECT": "bench",
                           "GITHUB_WEBHOOK_SECRET_PARAMETER": "/bench/secret", "ALLOWED_ACCOUNTS": "*",
                           "POWERTOOLS_LOG_LEVEL": "WARNING"})
        settings.cache_clear()
        aws.reset()
        import app as chalice_app

        from chalicelib import logs

        logs.logger.setLevel("WARNING")  # production logs INFO; the bench measures the route, not stdout
        cold_import_s, cold_first_s = cold_first_request(delivery.body, WEBHOOK_SECRET, max(3, args.imports // 2))
        print(f"  cold start, fresh interpreter: import {cold_import_s * 1000:.0f} ms + first delivery "
              f"{cold_first_s * 1000:.0f} ms (boto3 import, SSM secret read, SQS client, SQS write on moto)")
        context = LambdaContext("webhook", 256)
        counter = iter(range(10**9))

        def deliver() -> None:
            # A new tag per request so FIFO deduplication does not short-cut the queue write.
            payload = delivery.payload
            payload["registry_package"]["package_version"]["container_metadata"]["tag"]["name"] = f"v{next(counter)}"
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "registry_package",
                       "X-GitHub-Delivery": "bench-1", "X-Hub-Signature-256": events.sign(secret, body)}
            response = chalice_app.app(api_gateway_event(headers, body), context)
            assert response["statusCode"] == 202, response

        sys.stdout.flush()
        devnull = open(os.devnull, "w")
        real_stdout, sys.stdout = sys.stdout, devnull  # EMF metric lines
        try:
            timed(deliver, 50)  # warm: SSM read, clients built
            with_sqs = timed(deliver, args.requests // 4)
            aws.use(aws.Sqs, RecordingSqs(offline=True))
            timed(deliver, 50)
            without_sqs = timed(deliver, args.requests)
        finally:
            sys.stdout = real_stdout
        print(f"\nwarm route latency, signed tagged-index delivery ({len(delivery.body)} bytes)")
        print(f"  with SQS on local moto    {percentiles(with_sqs)}   (n={len(with_sqs)})")
        print(f"  excluding the SQS call    {percentiles(without_sqs)}   (n={len(without_sqs)})")
        print(f"  deliveries per second     {len(without_sqs) / sum(without_sqs):8.0f} /s excluding SQS, "
              f"{len(with_sqs) / sum(with_sqs):6.0f} /s with moto SQS")

    from githubkit import webhooks as gk

    body, signature = delivery.body, events.sign(secret, delivery.body)
    n = args.requests
    print("\npeers (same payload)")
    ours_hmac = timed(lambda: events.signature_valid(secret, body, signature), n)
    print(f"  HMAC check: ours            {percentiles(ours_hmac)}")
    print(f"  HMAC check: githubkit.verify {percentiles(timed(lambda: gk.verify(WEBHOOK_SECRET, body, signature), n))}")
    ours_decide = timed(lambda: events.decide("registry_package", "d", body), n)
    print(f"  decide (raw fields): ours   {percentiles(ours_decide)}")
    print(f"  githubkit.webhooks.parse    {percentiles(timed(lambda: gk.parse('registry_package', body), n // 4))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
