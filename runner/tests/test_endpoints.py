"""Endpoint steps: a model package deployed to a local endpoint that a later step invokes."""

from __future__ import annotations

import io
import json
import random
import tarfile
import textwrap

import pytest

from sagemaker_pipelines_local import (
    EndpointNotFoundError,
    LocalModelRegistry,
    ServingError,
    UnsupportedFeatureError,
    delete_endpoint,
    endpoint_model_package,
    run_pipeline,
    version_serving_spec,
)
from sagemaker_pipelines_local.endpoints import read_endpoint, serving_spec
from sagemaker_pipelines_local.serving import ModelServer
from sagemaker_pipelines_local.workspace import Workspace
from test_container_fidelity import script_step
from test_runner import BUCKET, REGION, make_definition

IMAGE = "123.dkr.ecr.us-east-1.amazonaws.com/x:1"  # an image the runner has no pins for
ENDPOINT = "demo-staging"

INFERENCE = """
    import json
    from pathlib import Path


    def model_fn(model_dir):
        model = json.loads((Path(model_dir) / "model.json").read_text())
        if model.get("broken"):
            raise RuntimeError("this model cannot be loaded")
        return model


    def input_fn(body, content_type):
        return [float(value) for value in body.strip().split(",")]


    def predict_fn(values, model):
        return model["factor"] * sum(values)


    def output_fn(prediction, accept):
        return f"{prediction:g}"
"""

SMOKE_TEST = """
    import os, sys
    import boto3

    runtime = boto3.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(
        EndpointName="demo-staging", Body=b"1,2", ContentType="text/csv", Accept="text/csv"
    )
    with open(os.path.join(sys.argv[1], "answer.txt"), "wb") as fh:
        fh.write(answer["Body"].read())
"""


def register(workdir, store, version_tag, model):
    """A model version in the local registry, its model.tar.gz in the object store."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, text in {
            "model.json": json.dumps(model),
            "code/inference.py": textwrap.dedent(INFERENCE),
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    uri = f"{BUCKET}/models/{version_tag}/model.tar.gz"
    store.put_bytes(archive.getvalue(), uri)
    package = {
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": IMAGE,
                    "ModelDataUrl": uri,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    },
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    }
    record = LocalModelRegistry(workdir).register("demo", package, region=REGION)
    return record["ModelPackageArn"]


def deploy_steps(package_arn, config_name):
    return [
        {
            "Name": "CreateModel",
            "Type": "Model",
            "Arguments": {
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/test",
                "PrimaryContainer": {"ModelPackageName": package_arn},
            },
        },
        {
            "Name": "EndpointConfig",
            "Type": "EndpointConfig",
            "Arguments": {
                "EndpointConfigName": config_name,
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": {"Get": "Steps.CreateModel.ModelName"},
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.large",
                    }
                ],
            },
        },
        {
            "Name": "Endpoint",
            "Type": "Endpoint",
            "Arguments": {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": {"Get": "Steps.EndpointConfig.EndpointConfigName"},
            },
        },
    ]


def deploy(workdir, package_arn, config_name):
    """Run the three deploy steps alone."""
    definition = make_definition(deploy_steps(package_arn, config_name))
    return run_pipeline(definition, workdir=workdir, pipeline_name="deploy", region=REGION)


def smoke_step(store, tmp_path):
    step = script_step(store, tmp_path, "Smoke", SMOKE_TEST, image=IMAGE)
    step["DependsOn"] = ["Endpoint"]
    return step


def test_a_version_is_deployed_and_a_later_step_invokes_it_with_boto3(store, workdir, tmp_path):
    arn = register(workdir, store, "v1", {"factor": 10})
    steps = [*deploy_steps(arn, "demo-staging-1"), smoke_step(store, tmp_path)]

    result = run_pipeline(
        make_definition(steps), workdir=workdir, pipeline_name="deploy", region=REGION
    )

    assert result.status == "Succeeded", result.failure_reason
    [out] = result.step("Smoke")["outputs"]
    assert (tmp_path.joinpath(out["local_path"]) / "answer.txt").read_text() == "30"
    endpoint = read_endpoint(Workspace(workdir), ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "demo-staging-1"
    arn_prefix = f"arn:aws:sagemaker:{REGION}:000000000000"
    assert endpoint["EndpointArn"] == f"{arn_prefix}:endpoint/demo-staging"
    # The Endpoint step's properties are DescribeEndpoint's.
    properties = result.step("Endpoint")["properties"]
    assert properties["EndpointStatus"] == "InService"


def test_outside_a_run_the_endpoint_serves_its_current_config(store, workdir, tmp_path):
    arn = register(workdir, store, "v1", {"factor": 10})
    deploy(workdir, arn, "demo-staging-1")
    spec = serving_spec(Workspace(workdir), ENDPOINT)
    with ModelServer(spec, log_dir=tmp_path / "serve") as server:
        assert server.invoke(b"1,2,3").body == b"60"


def test_the_endpoint_names_the_version_it_serves_and_follows_an_update(store, workdir):
    with pytest.raises(EndpointNotFoundError, match="endpoints there: none"):
        endpoint_model_package(workdir, ENDPOINT)
    first = register(workdir, store, "v1", {"factor": 10})
    deploy(workdir, first, "demo-staging-1")
    assert endpoint_model_package(workdir, ENDPOINT) == first
    second = register(workdir, store, "v2", {"factor": 2})
    deploy(workdir, second, "demo-staging-2")
    assert endpoint_model_package(workdir, ENDPOINT) == second

    delete_endpoint(workdir, ENDPOINT)
    with pytest.raises(EndpointNotFoundError):
        read_endpoint(workdir, ENDPOINT)
    # Its configs stay, as SageMaker keeps them: a later deployment may name one again.
    assert Workspace(workdir).endpoint_config_record("demo-staging-2").is_file()
    with pytest.raises(EndpointNotFoundError):
        delete_endpoint(workdir, ENDPOINT)


def test_a_registered_version_is_served_without_an_endpoint(store, workdir, tmp_path):
    register(workdir, store, "v1", {"factor": 10})
    arn = register(workdir, store, "v2", {"factor": 2})
    package = LocalModelRegistry(workdir).get("demo", int(arn.rsplit("/", 1)[1]))

    spec = version_serving_spec(workdir, package)

    assert spec.model_dir == Workspace(workdir).version_serving_dir("demo", 2) / "model"
    with ModelServer(spec, log_dir=tmp_path / "serve") as server:
        assert server.invoke(b"1,2,3").body == b"12"
    assert not (Workspace(workdir).endpoints_dir / ENDPOINT).exists()  # no endpoint made


def test_a_version_whose_model_data_is_gone_cannot_be_served(store, workdir):
    arn = register(workdir, store, "v1", {"factor": 10})
    package = LocalModelRegistry(workdir).get("demo", int(arn.rsplit("/", 1)[1]))
    store.uri_to_path(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]).unlink()
    with pytest.raises(ServingError, match="Version 1 of 'demo' cannot be served"):
        version_serving_spec(workdir, package)


def test_a_config_that_cannot_serve_leaves_the_previous_one_in_service(store, workdir, tmp_path):
    good = register(workdir, store, "v1", {"factor": 10})
    first = deploy(workdir, good, "demo-staging-1")
    assert first.status == "Succeeded", first.failure_reason
    broken = register(workdir, store, "v2", {"factor": 1, "broken": True})

    second = deploy(workdir, broken, "demo-staging-2")

    assert second.status == "Failed"
    assert "could not be updated to config demo-staging-2" in second.failure_reason
    assert "this model cannot be loaded" in second.failure_reason
    assert "It still serves demo-staging-1" in second.failure_reason
    endpoint = read_endpoint(Workspace(workdir), ENDPOINT)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        "demo-staging-1",
    )


def test_a_new_endpoint_that_cannot_serve_is_left_failed(store, workdir):
    broken = register(workdir, store, "v1", {"factor": 1, "broken": True})
    result = deploy(workdir, broken, "demo-staging-1")
    assert result.status == "Failed"
    endpoint = read_endpoint(Workspace(workdir), ENDPOINT)
    assert endpoint["EndpointStatus"] == "Failed"
    assert "this model cannot be loaded" in endpoint["FailureReason"]


def test_a_config_name_is_used_once(store, workdir):
    arn = register(workdir, store, "v1", {"factor": 10})
    definition = make_definition(deploy_steps(arn, "demo-staging-1"))
    run_pipeline(definition, workdir=workdir, pipeline_name="deploy", region=REGION)
    again = run_pipeline(definition, workdir=workdir, pipeline_name="deploy", region=REGION)
    assert again.status == "Failed"
    assert "endpoint config 'demo-staging-1' already exists" in again.failure_reason


def test_two_variants_are_refused_before_anything_runs(store, workdir):
    arn = register(workdir, store, "v1", {"factor": 10})
    steps = deploy_steps(arn, "demo-staging-1")
    variants = steps[1]["Arguments"]["ProductionVariants"]
    variants.append({**variants[0], "VariantName": "Canary"})
    with pytest.raises(UnsupportedFeatureError, match="exactly one production variant"):
        run_pipeline(make_definition(steps), workdir=workdir, pipeline_name="deploy", region=REGION)
    assert not Workspace(workdir).models_dir.exists()  # nothing ran


ROLLBACK = """
    import json, os, sys
    import boto3
    from botocore.exceptions import ClientError

    NAME = "demo-staging"
    sagemaker = boto3.client("sagemaker")
    runtime = boto3.client("sagemaker-runtime")
    seen = {}
    approved = sagemaker.list_model_packages(
        ModelPackageGroupName="demo", ModelApprovalStatus="Approved", SortBy="CreationTime",
        SortOrder="Descending",
    )["ModelPackageSummaryList"]
    seen["latest_approved"] = approved[0]["ModelPackageVersion"]
    package = sagemaker.describe_model_package(ModelPackageName=approved[0]["ModelPackageArn"])
    seen["package_status"] = package["ModelApprovalStatus"]
    seen["serving"] = sagemaker.describe_endpoint(EndpointName=NAME)["EndpointConfigName"]


    def invoke():
        answer = runtime.invoke_endpoint(EndpointName=NAME, Body=b"1,2", ContentType="text/csv")
        return answer["Body"].read().decode()


    seen["before"] = invoke()
    sagemaker.update_endpoint(EndpointName=NAME, EndpointConfigName="demo-staging-1")
    seen["after"] = invoke()
    try:
        sagemaker.update_endpoint(EndpointName=NAME, EndpointConfigName="never-deployed")
    except ClientError as error:
        seen["unknown_config"] = error.response["Error"]["Code"]
    try:
        sagemaker.list_training_jobs()
    except ClientError as error:
        seen["not_emulated"] = error.response["Error"]["Message"]
    sagemaker.delete_endpoint(EndpointName="demo-staging")
    try:
        sagemaker.describe_endpoint(EndpointName="demo-staging")
    except ClientError as error:
        seen["deleted"] = error.response["Error"]["Message"]
    with open(os.path.join(sys.argv[1], "seen.json"), "w") as fh:
        json.dump(seen, fh)
"""


def test_a_step_reads_the_registry_and_rolls_the_endpoint_back_with_boto3(store, workdir, tmp_path):
    v1 = register(workdir, store, "v1", {"factor": 10})
    first = deploy(workdir, v1, "demo-staging-1")
    assert first.status == "Succeeded", first.failure_reason
    v2 = register(workdir, store, "v2", {"factor": 100})
    rollback = script_step(store, tmp_path, "Rollback", ROLLBACK, image=IMAGE)
    rollback["DependsOn"] = ["Endpoint"]

    result = run_pipeline(
        make_definition([*deploy_steps(v2, "demo-staging-2"), rollback]),
        workdir=workdir,
        pipeline_name="deploy",
        region=REGION,
    )

    assert result.status == "Succeeded", result.failure_reason
    [out] = result.step("Rollback")["outputs"]
    seen = json.loads((tmp_path.joinpath(out["local_path"]) / "seen.json").read_text())
    assert seen["latest_approved"] == 2 and seen["package_status"] == "Approved"
    assert seen["serving"] == "demo-staging-2"
    assert (seen["before"], seen["after"]) == ("300", "30")  # v2, then v1 again
    assert seen["unknown_config"] == "ValidationException"
    assert "SageMaker.ListTrainingJobs is not emulated by the local runner" in seen["not_emulated"]
    assert seen["deleted"] == 'Could not find endpoint "demo-staging".'
    assert not Workspace(workdir).endpoint_record(ENDPOINT).exists()


READ_MODEL_DATA = """
    import json, os, sys
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
    [latest] = sagemaker.list_model_packages(
        ModelPackageGroupName="demo", ModelApprovalStatus="Approved", SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    package = sagemaker.describe_model_package(ModelPackageName=latest["ModelPackageArn"])
    url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = url[len("s3://"):].split("/", 1)
    seen = {"version": latest["ModelPackageVersion"]}
    seen["body"] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().hex()
    seen["size"] = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    seen["tail"] = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-4")["Body"].read().hex()
    # Ranged parts, as s3transfer downloads a file over its threshold.
    target = os.path.join(sys.argv[1], "model.tar.gz")
    small_parts = TransferConfig(multipart_threshold=256, multipart_chunksize=256)
    s3.download_file(bucket, key, target, Config=small_parts)
    seen["downloaded"] = open(target, "rb").read().hex()
    for name, call in {
        "missing": lambda: s3.get_object(Bucket=bucket, Key=key + ".gone"),
        "write": lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x"),
    }.items():
        try:
            call()
        except ClientError as error:
            seen[name] = error.response["Error"]["Code"]
    with open(os.path.join(sys.argv[1], "seen.json"), "w") as fh:
        json.dump(seen, fh)
"""


def test_a_step_reads_a_versions_model_data_with_boto3(store, workdir, tmp_path):
    register(workdir, store, "v1", {"factor": 10})
    noise = random.Random(0).randbytes(1500).hex()  # a tarball larger than the parts
    arn = register(workdir, store, "v2", {"factor": 100, "padding": noise})
    step = script_step(store, tmp_path, "ReadModelData", READ_MODEL_DATA, image=IMAGE)

    definition = make_definition([step])
    result = run_pipeline(definition, workdir=workdir, pipeline_name="p", region=REGION)

    assert result.status == "Succeeded", result.failure_reason
    [out] = result.step("ReadModelData")["outputs"]
    seen = json.loads((tmp_path.joinpath(out["local_path"]) / "seen.json").read_text())
    stored = store.uri_to_path(f"{BUCKET}/models/v2/model.tar.gz").read_bytes()
    assert seen["version"] == 2 and arn.endswith("/2")
    assert bytes.fromhex(seen["body"]) == stored and seen["size"] == len(stored) > 512
    assert bytes.fromhex(seen["tail"]) == stored[-4:]
    assert bytes.fromhex(seen["downloaded"]) == stored
    assert (seen["missing"], seen["write"]) == ("NoSuchKey", "NotImplemented")
