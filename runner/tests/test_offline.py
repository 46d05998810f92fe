"""The offline extra: a Pipeline object's definition built in moto, its uploads captured."""

from __future__ import annotations

import json
import os

import pytest

from sagemaker_pipelines_local import LocalObjectStore
from sagemaker_pipelines_local.offline import build_definition, default_bucket, offline_aws


class UploadingPipeline:
    """Stands for a SageMaker Pipeline: `definition()` uploads its code, as the SDK does."""

    def __init__(self, boto_session, bucket: str) -> None:
        self.s3 = boto_session.client("s3")
        self.bucket = bucket

    def definition(self) -> str:
        self.s3.put_object(Bucket=self.bucket, Key="demo/code/preprocess.py", Body=b"print(1)\n")
        return json.dumps({"Version": "2020-12-01", "Steps": []})


def test_uploads_are_captured_into_the_workspace(tmp_path):
    seen = {}

    def build(boto_session):
        seen["region"] = boto_session.region_name
        return UploadingPipeline(boto_session, default_bucket("eu-west-1"))

    definition = build_definition(build, region="eu-west-1", workdir=tmp_path)

    assert json.loads(definition)["Version"] == "2020-12-01"
    assert seen["region"] == "eu-west-1"
    uri = "s3://sagemaker-eu-west-1-123456789012/demo/code/preprocess.py"
    assert LocalObjectStore(tmp_path).read_bytes(uri) == b"print(1)\n"


def test_a_build_may_return_the_finished_definition_text(tmp_path):
    """A project that finishes the text itself (records its hash) returns a string; the
    uploads of its build are captured and the text is cached as it was returned."""
    from sagemaker_pipelines_local import DefinitionCache

    def build(boto_session):
        text = UploadingPipeline(boto_session, default_bucket("eu-west-1")).definition()
        return text.replace("[]", '[{"Name": "Sealed"}]')

    cache = DefinitionCache(tmp_path / "cache")
    key = cache.key([], {"project": "demo"})
    definition = build_definition(
        build, region="eu-west-1", workdir=tmp_path / "w", cache=cache, cache_key=key
    )

    assert json.loads(definition)["Steps"] == [{"Name": "Sealed"}]
    assert cache.load(key).definition == definition
    uri = "s3://sagemaker-eu-west-1-123456789012/demo/code/preprocess.py"
    assert LocalObjectStore(tmp_path / "w").read_bytes(uri) == b"print(1)\n"


def test_no_real_account_is_reachable_and_the_environment_is_restored(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with offline_aws("us-east-1") as boto_session:
        assert "AWS_PROFILE" not in os.environ
        assert boto_session.get_credentials().access_key != "AKIAREAL"
        s3 = boto_session.client("s3")
        s3.create_bucket(Bucket="in-moto-only")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["in-moto-only"]
    assert os.environ["AWS_PROFILE"] == "production"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAREAL"
    assert "AWS_DEFAULT_REGION" not in os.environ


def test_an_error_in_the_build_reaches_the_caller(tmp_path):
    def build(boto_session):
        raise ValueError("the project's own mistake")

    with pytest.raises(ValueError, match="the project's own mistake"):
        build_definition(build, region="us-east-1", workdir=tmp_path)
    assert not (tmp_path / "s3").exists()


def test_sessions_of_a_build_share_one_botocore_loader_and_the_hook_is_removed():
    import boto3
    import botocore.loaders
    import botocore.session

    with offline_aws("us-east-1") as boto_session:
        other = boto3.Session(region_name="us-east-1")
        first = boto_session._session.get_component("data_loader")
        assert other._session.get_component("data_loader") is first
        # The shared loader serves what a fresh one would.
        shared = first.load_service_model("sagemaker", "service-2")
        fresh = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")
        assert shared == fresh
    assert botocore.session.create_loader is botocore.loaders.create_loader
    after = boto3.Session(region_name="us-east-1")._session.get_component("data_loader")
    assert after is not first
