"""Network isolation, where it is cheap to be faithful: an isolated job reaches no AWS
endpoint, and an isolated model starts only if its container would start with no network."""

from __future__ import annotations

import io
import tarfile

import pytest

from sagemaker_pipelines_local import run_pipeline
from test_container_fidelity import ENV_SCRIPT, output_json, run, script_step
from test_runner import (
    BUCKET,
    INFERENCE,
    REGION,
    make_definition,
    model_members,
    put_v2_training_code,
    targz,
    training_step,
    transform_output,
    transform_pipeline,
)

AWS_REACH = ("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # fmt: skip


@pytest.mark.parametrize("isolated", [True, False])
def test_an_isolated_processing_job_gets_no_aws_endpoint(store, workdir, tmp_path, isolated):
    step = script_step(store, tmp_path, "Env", ENV_SCRIPT)
    step["Arguments"]["NetworkConfig"] = {
        "EnableNetworkIsolation": isolated,
        "EnableInterContainerTrafficEncryption": True,
    }
    result = run(workdir, step)
    assert result.status == "Succeeded", result.failure_reason
    env = output_json(result, "Env", "env.json")
    if isolated:
        assert not set(AWS_REACH) & set(env), sorted(env)
        assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    else:
        assert set(AWS_REACH) <= set(env), sorted(env)
    ignored = {item["setting"] for item in result.step("Env")["ignored"]}
    assert "NetworkConfig.EnableInterContainerTrafficEncryption" in ignored


BOTO3_CALL = """
    import sys
    import boto3
    boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="g")
"""


def test_a_script_that_calls_aws_fails_when_isolated(store, workdir, tmp_path):
    step = script_step(store, tmp_path, "Calls", BOTO3_CALL)
    step["Arguments"]["NetworkConfig"] = {"EnableNetworkIsolation": True}
    result = run(workdir, step)
    assert result.status == "Failed"
    assert "NoCredentialsError" in result.step("Calls")["failure_reason"]


def test_an_isolated_v2_training_job_takes_its_code_from_the_code_channel(store, workdir):
    # With network isolation SDK v2 sends sourcedir.tar.gz as the "code" channel.
    put_v2_training_code(store)
    step = training_step(
        {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"/opt/ml/input/data/code/sourcedir.tar.gz"',
            "target-column": '"species"',
        },
        {"train": f"{BUCKET}/data/train", "code": f"{BUCKET}/src/sourcedir.tar.gz"},
    )
    step["Arguments"]["EnableNetworkIsolation"] = True
    result = run_pipeline(
        make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert result.status == "Succeeded", result.failure_reason
    _, info = model_members(
        store, result.step("Train")["properties"]["ModelArtifacts"]["S3ModelArtifacts"]
    )
    assert info["argv"] == ["--target-column", "species"]


def sourcedir(inference: str) -> bytes:
    return targz({"inference.py": inference})


def isolated_model(definition, **environment):
    model = definition["Steps"][0]["Arguments"]
    model["EnableNetworkIsolation"] = True
    model["PrimaryContainer"]["Environment"].update(environment)
    return definition


def run_transform(workdir, definition):
    return run_pipeline(definition, workdir=workdir, pipeline_name="demo", region=REGION)


def test_an_isolated_model_starts_with_pip_no_build_isolation_false(store, workdir, tmp_path):
    definition = isolated_model(transform_pipeline(store, tmp_path), PIP_NO_BUILD_ISOLATION="false")
    result = run_transform(workdir, definition)
    assert result.status == "Succeeded", result.failure_reason
    assert transform_output(store, result) == "6.0\n14.0\n22.0\n30.0\n38.0\n"


@pytest.mark.parametrize(
    ("environment", "reason"),
    [
        ({}, "set PIP_NO_BUILD_ISOLATION=false"),
        # pip reads the variable inverted: "true" keeps the isolated build.
        ({"PIP_NO_BUILD_ISOLATION": "true"}, "set PIP_NO_BUILD_ISOLATION=false"),
        (
            {"SAGEMAKER_SUBMIT_DIRECTORY": f"{BUCKET}/src/sourcedir.tar.gz"},
            "cannot be downloaded from S3",
        ),
    ],
)
def test_an_isolated_model_that_could_not_start_on_sagemaker_fails(
    store, workdir, tmp_path, environment, reason
):
    definition = isolated_model(transform_pipeline(store, tmp_path), **environment)
    store.put_bytes(sourcedir(INFERENCE), f"{BUCKET}/src/sourcedir.tar.gz")
    result = run_transform(workdir, definition)
    assert result.status == "Failed"
    failure = result.step("BatchTransform")["failure_reason"]
    assert "EnableNetworkIsolation" in failure and reason in failure, failure


def test_an_isolated_model_with_requirements_fails(store, workdir, tmp_path):
    definition = isolated_model(transform_pipeline(store, tmp_path), PIP_NO_BUILD_ISOLATION="false")
    uri = f"{BUCKET}/models/job/output/model.tar.gz"
    buf = io.BytesIO()
    with (
        tarfile.open(store.uri_to_path(uri), "r:gz") as old,
        tarfile.open(fileobj=buf, mode="w:gz") as new,
    ):
        for member in old.getmembers():
            new.addfile(member, old.extractfile(member))
        data = b"requests\n"
        member = tarfile.TarInfo("code/requirements.txt")
        member.size = len(data)
        new.addfile(member, io.BytesIO(data))
    store.put_bytes(buf.getvalue(), uri)
    result = run_transform(workdir, definition)
    assert result.status == "Failed"
    assert "requirements.txt" in result.step("BatchTransform")["failure_reason"]
