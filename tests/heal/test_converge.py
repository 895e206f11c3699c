"""Nothing pushed is lost: an outage is redelivered, a push never delivered is reconciled, installing backfills.

End to end on the stand-ins: the GitHub stand-in delivers to the App (Chalice's test client) and records the
answers; the App runs on moto; each build runs `ghcr2ecr run-job` against the GHCR and ECR stand-ins.
"""

from __future__ import annotations

import json

import pytest

from standins import images
from standins.ghcr_ecr import EcrStandin, GhcrStandin, push_to
from tests.support.app_fixtures import AppEnv, dispatch_queued, load_delivery, post
from tests.support.converge import delivery_for, moto_ecr, run_builds, unique_package, world  # noqa: F401
from tests.support.engine_helpers import dest_has

pytestmark = pytest.mark.registry


def sender(client):
    """Return how the GitHub stand-in reaches the webhook: POST, and the HTTP status it got."""
    return lambda headers, body: client.http.post("/github/webhook", headers=headers, body=body).status_code


def scheduled(client, handler: str) -> None:
    """Invoke a scheduled handler as EventBridge does."""
    client.lambda_.invoke(handler, client.events.generate_cw_event(
        "aws.events", "Scheduled Event", {}, [f"arn:aws:events:us-east-1:123456789012:rule/{handler}"]))


def in_ecr(ecr: EcrStandin, package: str, tag: str) -> bool:
    """Tell whether the ECR stand-in has `ghcr/octo-org/<package>:<tag>`."""
    return dest_has(ecr, f"ghcr/octo-org/{package}", "manifests", tag)


def mirrored(client, world: AppEnv, ghcr: GhcrStandin, prefix: str, seed: str = "") -> str:
    """Push a new package's v1 to GHCR, deliver its event to the App, dispatch it and run the build; name it."""
    package = unique_package(prefix)
    pushed = push_to(ghcr, f"octo-org/{package}", images.single_image(seed=package + seed), ("v1",))
    headers, body = delivery_for(package, pushed.digest, "v1")
    assert client.http.post("/github/webhook", headers=headers, body=body).status_code == 202
    dispatch_queued(client, world)
    run_builds(world, ghcr)
    return package


def test_deliveries_answered_503_while_the_queue_was_down_are_redelivered_and_mirrored(
        client, world: AppEnv, ghcr: GhcrStandin, moto_ecr: EcrStandin) -> None:
    packages = [unique_package("outage") for _ in range(2)]
    pushed = {p: push_to(ghcr, f"octo-org/{p}", images.multi_platform_index(seed=p), ("v1",)) for p in packages}
    world.sqs.fail = True  # the queue cannot be written: the webhook answers 503
    for package in packages:
        headers, body = delivery_for(package, pushed[package].digest, "v1")
        assert world.github.hooks.deliver(sender(client), headers, body, installation_id=77).status_code == 503
    world.github.hooks.record("refused-guid", status_code=401)  # refused on purpose: never redelivered
    world.sqs.fail = False  # recovered
    scheduled(client, "redeliver_failed")
    redelivered = world.github.hooks.perform(sender(client))
    assert sorted(d.status_code for d in redelivered) == [202, 202]
    dispatch_queued(client, world)
    results = run_builds(world, ghcr)
    assert [r["status"] for r in results] == ["synced", "synced"], [r["reason"] for r in results]
    assert all(in_ecr(moto_ecr, p, "v1") for p in packages)
    scheduled(client, "redeliver_failed")  # the next run finds every guid delivered: nothing more
    assert world.github.hooks.attempts == []


def test_a_push_that_was_never_delivered_is_healed_by_reconcile(client, world: AppEnv, ghcr: GhcrStandin,
                                                                moto_ecr: EcrStandin) -> None:
    package = mirrored(client, world, ghcr, "heal", seed="1")
    assert in_ecr(moto_ecr, package, "v1")
    # v2 is pushed, and its delivery never arrives (the App was down, or GitHub lost it).
    push_to(ghcr, f"octo-org/{package}", images.single_image(seed=package + "2"), ("v2",))
    built = len(world.codebuild.builds)
    scheduled(client, "reconcile")
    dispatch_queued(client, world)
    assert len(world.codebuild.builds) == built + 1
    job = world.build_job()
    assert (job.origin, job.selection.all_tags, [t.repository for t in job.targets]) == ("reconcile", True,
                                                                                        [package])
    [result] = run_builds(world, ghcr, start=built)
    assert result["status"] == "synced" and result["report"]["tags"]["set"] == ["v2"]
    assert result["report"]["tags"]["unchanged"] == ["v1"]
    assert in_ecr(moto_ecr, package, "v2")


def test_installing_on_an_organization_whose_repositories_have_images_mirrors_them(
        client, world: AppEnv, ghcr: GhcrStandin, moto_ecr: EcrStandin) -> None:
    with_images, without = [unique_package("svc") for _ in range(2)], unique_package("docs")
    for package in with_images:
        push_to(ghcr, f"octo-org/{package}", images.multi_platform_index(seed=package), ("v1", "latest"))
    delivery = load_delivery("installation-created")
    payload = delivery.payload
    payload["repositories"] = [{"id": 500 + n, "name": name, "full_name": f"octo-org/{name}", "private": True}
                               for n, name in enumerate([*with_images, without])]
    answer = post(client, delivery.with_payload(payload))
    assert answer.status_code == 202 and json.loads(answer.body)["jobs"] == 1
    dispatch_queued(client, world)
    assert len(world.codebuild.builds) == 1  # one build for the installation's batch, not one per repository
    results = {r["package"]: r for r in run_builds(world, ghcr)}
    assert [results[f"octo-org/{p}"]["status"] for p in with_images] == ["synced", "synced"]
    assert results[f"octo-org/{without}"]["status"] == "skipped"  # no package of that name: no error
    assert all(in_ecr(moto_ecr, p, tag) for p in with_images for tag in ("v1", "latest"))
    names = [r["repositoryName"] for r in world.boto("ecr").describe_repositories()["repositories"]]
    assert f"ghcr/octo-org/{without}" not in names and all(f"ghcr/octo-org/{p}" in names for p in with_images)


def test_reconcile_skips_an_uninstalled_owner_with_a_logged_reason(client, world: AppEnv, ghcr: GhcrStandin,
                                                                   json_logs) -> None:
    package = mirrored(client, world, ghcr, "gone")
    world.github.remove_installation(77)
    world.sqs.sent.clear()
    scheduled(client, "reconcile")
    assert world.sqs.sent == []
    [line] = json_logs.find("package not reconciled")
    assert line["package"] == f"octo-org/{package}" and "no longer installed" in line["reason"]


@pytest.mark.parametrize("change,reason", [("suspend", "suspended"), ("disallow", "ALLOWED_ACCOUNTS")])
def test_reconcile_skips_a_suspended_or_no_longer_allowed_owner(client, world: AppEnv, ghcr: GhcrStandin,
                                                               json_logs, monkeypatch, change: str,
                                                               reason: str) -> None:
    from tests.support.app_fixtures import clear_caches

    mirrored(client, world, ghcr, "skip")
    if change == "suspend":
        world.github.suspend_installation(77)
    else:
        monkeypatch.setenv("ALLOWED_ACCOUNTS", "someone-else")
        clear_caches()
        from chalicelib import aws

        aws.use(aws.Sqs, world.sqs)
    world.sqs.sent.clear()
    scheduled(client, "reconcile")
    assert world.sqs.sent == []
    [line] = json_logs.find("package not reconciled")
    assert reason in line["reason"]
