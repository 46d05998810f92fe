"""Build this project's pipeline definition with no AWS account and no network.

The generic part (moto's in-process AWS, the capture of the SDK's uploads) is the local
runner's `offline` extra, a dev dependency; this module only builds the project's own pipeline
with its settings.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .config import OFFLINE_ACCOUNT, Settings
from .provenance import place_build


def offline_role_arn(settings: Settings) -> str:
    return f"arn:aws:iam::{OFFLINE_ACCOUNT}:role/{settings.project_slug}-sagemaker-execution"


def offline_kms_key_arn(settings: Settings) -> str:
    """SAGEMAKER_KMS_KEY_ARN, else a key of the placeholder account: the same every build."""
    return settings.kms_key_arn or (
        f"arn:aws:kms:{settings.region}:{OFFLINE_ACCOUNT}:key/00000000-0000-4000-8000-000000000000"
    )


def offline_bucket(settings: Settings) -> str:
    """The bucket name the SDK would pick by default, with the placeholder account."""
    return settings.bucket or f"sagemaker-{settings.region}-{OFFLINE_ACCOUNT}"


# The project's two pipelines: the build pipeline, and the one that deploys a version.
BUILD, DEPLOY = "build", "deploy"


def build_definition(settings: Settings, workdir: Path | None = None, pipeline: str = BUILD) -> str:
    """The definition JSON exactly as `upsert` would send it, built offline.

    With `workdir`, every object the SDK uploaded, and the scripts, are put into that local
    workspace's object store (workdir/s3/<bucket>/<key>), where the runner finds them. The
    SDK's build is kept in the runner's build cache (see `cached_definition`) and placed
    (code keys, source revision, hash: `provenance.place_build`). `pipeline`: BUILD or DEPLOY.
    """
    from sagemaker_pipelines_local import DefinitionCache
    from sagemaker_pipelines_local.offline import build_definition as build_offline

    from . import pipeline as module

    settings = _offline(settings)
    get = {BUILD: module.get_pipeline, DEPLOY: module.get_deploy_pipeline}[pipeline]

    def build(boto_session):
        session = module.pipeline_session(settings, boto_session)
        role_arn = settings.role_arn or offline_role_arn(settings)
        return get(settings, session, role_arn).definition()

    cache = DefinitionCache()
    built = build_offline(
        build,
        region=settings.region,
        bucket=settings.bucket,
        workdir=workdir,
        cache=cache,
        cache_key=_cache_key(cache, settings, pipeline),
    )
    return place_build(built, _workspace_put(workdir))


def cached_definition(settings: Settings, workdir: Path | None = None, pipeline: str = BUILD):
    """The last build of this very code with these settings (a `CachedDefinition`), placed
    (the scripts' keys and the source revision of now, its uploads and the scripts put into
    `workdir`); None if anything the SDK's build depends on changed since.

    The key covers this package's files but the scripts (the pipeline, the settings), the
    settings' values, the installed packages (the SDK's version among them) and the SDK's
    configuration files: editing any of them means a new build. The scripts and the git
    state do not enter the SDK's build: they are placed into it (`place_build`), so an
    edited script or a new commit is in the definition without one.
    """
    from dataclasses import replace as with_changes

    from sagemaker_pipelines_local import DefinitionCache

    cache = DefinitionCache()
    cached = cache.load(_cache_key(cache, settings, pipeline), workdir)
    if cached is None:
        return None
    placed = place_build(cached.definition, _workspace_put(workdir))
    return with_changes(cached, definition=placed)


def _workspace_put(workdir: Path | None):
    """put(bucket, key, body) into the workspace's object store (None without a workspace)."""
    if workdir is None:
        return None
    from sagemaker_pipelines_local import LocalObjectStore

    store = LocalObjectStore(workdir)
    return lambda bucket, key, body: store.put_bytes(body, f"s3://{bucket}/{key}")


def _offline(settings: Settings) -> Settings:
    """The settings of an offline build: the placeholder bucket, and key when one is needed."""
    settings = replace(settings, bucket=offline_bucket(settings))
    if settings.encrypt_and_isolate:
        settings = replace(settings, kms_key_arn=offline_kms_key_arn(settings))
    return settings


def _cache_key(cache, settings: Settings, pipeline: str) -> str:
    settings = _offline(settings)
    facts = {"settings": repr(settings), "pipeline": pipeline, "sample": settings.input_key()}
    # The package's modules, not scripts/: the scripts are placed into the build (see
    # cached_definition), they do not enter the SDK's part.
    sources = sorted(Path(__file__).parent.glob("*.py"))
    return cache.key(sources, facts)
