"""Build a pipeline's definition with no AWS account and no network (the ``offline`` extra).

The SageMaker SDK (v2 and v3) uploads the steps' code to S3 when ``pipeline.definition()``
is called, so the build runs inside moto's in-process AWS, with placeholder credentials. The
objects the SDK uploaded are then copied into the workspace's object store, where
:func:`~sagemaker_pipelines_local.run_pipeline` finds them under the same ``s3://`` URIs.

Needs ``pip install "sagemaker-pipelines-local[offline]"`` (boto3 and moto) and the SDK the
pipeline is written with; the runner itself imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .buildcache import DefinitionCache
from .store import LocalObjectStore

# The account in the ARNs and the default bucket of an offline build (never a real one).
OFFLINE_ACCOUNT = "123456789012"

# Variables that could point boto3 at a real account or endpoint during an offline build.
_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
_MISSING = (
    "The offline build needs boto3 and moto, which are not installed in this environment: "
    'install the runner with its extra, pip install "sagemaker-pipelines-local[offline]".'
)


def default_bucket(region: str, account: str = OFFLINE_ACCOUNT) -> str:
    """The bucket the SDK picks by default (``sagemaker-<region>-<account>``)."""
    return f"sagemaker-{region}-{account}"


@contextmanager
def offline_aws(region: str) -> Iterator[Any]:
    """Placeholder credentials and an in-process AWS; yields a ``boto3.Session`` in `region`.

    Nothing inside can reach a real account: the variables that name a profile, a session or
    an endpoint are removed for the duration and restored afterwards.
    """
    try:
        import boto3
        from moto import mock_aws
    except ModuleNotFoundError:
        raise RuntimeError(_MISSING) from None
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
        with mock_aws(), shared_botocore_loader():
            yield boto3.Session(region_name=region)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# botocore loaders by data path, kept for the process: see shared_botocore_loader.
_LOADERS: dict[str | None, Any] = {}


@contextmanager
def shared_botocore_loader() -> Iterator[None]:
    """Every botocore session made inside shares one loader per data path (``offline_aws``
    uses it; so may a test that builds a pipeline against a stand-in of the account).

    The SDK makes several boto sessions per build, and each new session parses botocore's
    JSON service models again (the SageMaker one alone is megabytes): 1.5 of a build's 3 s.
    A loader only reads files and caches what it read, so sharing it changes no result.
    """
    import botocore.session

    original = botocore.session.create_loader

    def shared(search_path_string: str | None = None) -> Any:
        if search_path_string not in _LOADERS:
            _LOADERS[search_path_string] = original(search_path_string)
        return _LOADERS[search_path_string]

    botocore.session.create_loader = shared
    try:
        yield
    finally:
        botocore.session.create_loader = original


def build_definition(
    build: Callable[[Any], Any],
    *,
    region: str,
    bucket: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    cache: DefinitionCache | None = None,
    cache_key: str | None = None,
) -> str:
    """The definition JSON of the pipeline ``build(boto_session)`` returns, built offline.

    `build` receives a ``boto3.Session`` inside the in-process AWS and returns a SageMaker
    ``Pipeline`` (SDK v2 or v3), or its definition JSON when the project finishes the text
    itself (e.g. records a hash of it); make its session from that boto session, with
    `bucket` as the default bucket. `bucket` (default: :func:`default_bucket`) is created before the
    build. With `workdir`, every object the SDK uploaded is copied into that workspace's
    object store (``<workdir>/s3/<bucket>/<key>``), ready for ``run_pipeline``. With `cache`
    and `cache_key` (:meth:`DefinitionCache.key`), the build is kept there, uploads
    included, for :meth:`DefinitionCache.load` to give back instead of building again.
    """
    if (cache is None) != (cache_key is None):
        raise ValueError("build_definition: give cache and cache_key together, or neither")
    bucket = bucket or default_bucket(region)
    with offline_aws(region) as boto_session:
        s3 = boto_session.client("s3")
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
        built = build(boto_session)
        definition = built if isinstance(built, str) else built.definition()
        uploads = _uploads(s3, bucket) if workdir is not None or cache is not None else {}
    if workdir is not None:
        store = LocalObjectStore(workdir)
        for uri, body in uploads.items():
            store.put_bytes(body, uri)
    if cache is not None and cache_key is not None:
        cache.save(cache_key, definition, uploads)
    return definition


def _uploads(s3: Any, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket (what the SDK uploaded while building), by URI."""
    found = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[f"s3://{bucket}/{item['Key']}"] = body
    return found
