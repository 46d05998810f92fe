"""Build the pipeline definition with no AWS account and no network.

`pipeline.definition()` uploads the scripts to S3 on every call, so the build runs inside
moto's in-process AWS stand-in; the uploads it captures are what `run-local` executes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .config import OFFLINE_ACCOUNT, Settings

# Variables that could point boto3 at a real account or endpoint during an offline build.
_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


def offline_role_arn(settings: Settings) -> str:
    return f"arn:aws:iam::{OFFLINE_ACCOUNT}:role/{settings.project_slug}-sagemaker-execution"


def offline_bucket(settings: Settings) -> str:
    """The bucket name the SDK would pick by default, with the placeholder account."""
    return settings.bucket or f"sagemaker-{settings.region}-{OFFLINE_ACCOUNT}"


@contextmanager
def offline_aws(region: str) -> Iterator[None]:
    """Fake credentials and an in-process AWS: nothing can reach a real account."""
    saved = {
        key: os.environ.get(key)
        for key in (*_AWS_ENV, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    for key in _AWS_ENV:
        os.environ.pop(key, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "offline"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "offline"  # noqa: S105 - a placeholder, never valid
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        from moto import mock_aws

        with mock_aws():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_definition(settings: Settings, capture_dir: Path | None = None) -> str:
    """The definition JSON exactly as `upsert` would send it, built offline.

    With `capture_dir`, every object the SDK uploaded is copied to
    capture_dir/<bucket>/<key>: the local object store of the runner.
    """
    import boto3

    from .pipeline import get_pipeline, pipeline_session

    settings = replace(settings, bucket=offline_bucket(settings))
    with offline_aws(settings.region):
        boto_session = boto3.Session(region_name=settings.region)
        s3 = boto_session.client("s3")
        if settings.region == "us-east-1":
            s3.create_bucket(Bucket=settings.bucket)
        else:
            s3.create_bucket(
                Bucket=settings.bucket,
                CreateBucketConfiguration={"LocationConstraint": settings.region},
            )
        session = pipeline_session(settings, boto_session)
        pipeline = get_pipeline(settings, session, settings.role_arn or offline_role_arn(settings))
        definition = pipeline.definition()
        if capture_dir is not None:
            _capture_uploads(s3, settings.bucket, capture_dir)
    return definition


def _capture_uploads(s3, bucket: str, capture_dir: Path) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            target = capture_dir / bucket / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
