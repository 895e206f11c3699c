"""GHCR's stand-in takes a job's GITHUB_TOKEN for its owner's private packages, and still denies App tokens."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from standins import images, skopeo
from standins.ghcr_ecr import GhcrStandin
from standins.push import PushedImage

pytestmark = pytest.mark.registry


def test_a_job_token_pulls_its_owners_private_package_while_the_app_token_is_denied(
        ghcr: GhcrStandin, new_repo_name: Callable[..., str], push_image: Callable[..., PushedImage]) -> None:
    pushed = push_image(ghcr, new_repo_name("octo-job"), images.single_image("job-token"))
    job = ghcr.job_token("octo-job/*")
    assert job.username == "x-access-token"
    assert skopeo.digest(pushed.ref(), job) == pushed.digest
    with pytest.raises(skopeo.SkopeoError, match="403"):
        skopeo.digest(pushed.ref(), ghcr.app_token)


def test_a_job_token_is_denied_another_owners_private_package(
        ghcr: GhcrStandin, new_repo_name: Callable[..., str], push_image: Callable[..., PushedImage]) -> None:
    other = push_image(ghcr, new_repo_name("octo-other"), images.single_image("other-owner"))
    job = ghcr.job_token("octo-job/*")
    with pytest.raises(skopeo.SkopeoError, match="403"):
        skopeo.digest(other.ref(), job)


def test_a_job_token_is_refused_once_its_job_has_ended(
        ghcr: GhcrStandin, new_repo_name: Callable[..., str], push_image: Callable[..., PushedImage]) -> None:
    pushed = push_image(ghcr, new_repo_name("octo-job"), images.single_image("ended-job"))
    job = ghcr.job_token("octo-job/*")
    assert skopeo.digest(pushed.ref(), job) == pushed.digest
    ghcr.end_job(job)
    with pytest.raises(skopeo.SkopeoError, match="unauthorized"):
        skopeo.digest(pushed.ref(), job)
