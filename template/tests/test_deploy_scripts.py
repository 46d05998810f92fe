"""The deploy pipeline's scripts on their failure paths, their AWS calls checked by botocore.

Each script runs in this process (script_runner.py) with boto3's clients replaced by
botocore's Stubber: every call the script makes must be one the test expects, with exactly
these parameters, validated against the service's request shape. The path where everything
works runs for real in test_run_local.py (`models approve` deploys to a local endpoint).
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from script_runner import run_script

ENDPOINT = "demo-staging"
GROUP = "demo"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demo/3"


@pytest.fixture
def aws(monkeypatch):
    """Stubbed `sagemaker` and `sagemaker-runtime` clients, handed to the scripts."""
    clients = {
        name: boto3.client(
            name,
            region_name="us-east-1",
            aws_access_key_id="stub",
            aws_secret_access_key="stub",  # noqa: S106 - a placeholder, never sent
        )
        for name in ("sagemaker", "sagemaker-runtime")
    }
    stubs = {name: Stubber(client) for name, client in clients.items()}
    monkeypatch.setattr(boto3, "client", lambda name, *a, **k: clients[name])
    for stub in stubs.values():
        stub.activate()
    yield stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def answer(text: str) -> dict:
    body = text.encode()
    return {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "text/csv"}


def smoke_test(scripts_dir, tmp_path, previous: str, rows: list[str], expected: list[str]):
    (tmp_path / "rows").mkdir()
    (tmp_path / "expected").mkdir()
    (tmp_path / "rows" / "batch.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "expected" / "batch.csv.out").write_text("\n".join(expected) + "\n")
    return run_script(
        scripts_dir / "smoke_test.py",
        "--endpoint-name", ENDPOINT,
        "--previous-config", previous,
        "--rows-dir", tmp_path / "rows",
        "--expected-dir", tmp_path / "expected",
        "--output-dir", tmp_path / "smoke",
    )  # fmt: skip


def test_a_wrong_answer_puts_the_previous_config_back(aws, scripts_dir, tmp_path):
    runtime, sagemaker = aws["sagemaker-runtime"], aws["sagemaker"]
    runtime.add_response("invoke_endpoint", answer("a\nc\n"))
    runtime.add_client_error("invoke_endpoint", "ModelError", http_status_code=424)
    sagemaker.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"},
        {"EndpointName": ENDPOINT, "EndpointConfigName": "demo-staging-old"},
    )
    sagemaker.add_response(  # the waiter: the endpoint serves again
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
            "EndpointConfigName": "demo-staging-old",
            "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
        },
        {"EndpointName": ENDPOINT},
    )

    result = smoke_test(scripts_dir, tmp_path, "demo-staging-old", ["1,2", "3,4"], ["a", "b"])

    assert result.returncode == 1
    assert "row 2: the endpoint answered 'c', batch 'b'" in result.stderr
    assert f"Rolled back: {ENDPOINT} serves demo-staging-old again" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_new_endpoint_that_answers_a_malformed_row_is_deleted(aws, scripts_dir, tmp_path):
    runtime, sagemaker = aws["sagemaker-runtime"], aws["sagemaker"]
    runtime.add_response("invoke_endpoint", answer("a\n"))
    runtime.add_response("invoke_endpoint", answer("a\n"))  # the malformed row, answered
    sagemaker.add_response("delete_endpoint", {}, {"EndpointName": ENDPOINT})

    result = smoke_test(scripts_dir, tmp_path, "", ["1,2"], ["a"])

    assert result.returncode == 1
    assert "a malformed row (one field too many) was answered instead of refused" in result.stderr
    assert f"{ENDPOINT} was new, and is deleted" in result.stderr


def test_answers_as_in_batch_and_a_refused_malformed_row_pass(aws, scripts_dir, tmp_path):
    runtime = aws["sagemaker-runtime"]
    runtime.add_response("invoke_endpoint", answer("a\nb\n"))
    runtime.add_client_error("invoke_endpoint", "ModelError", http_status_code=424)

    result = smoke_test(scripts_dir, tmp_path, "demo-staging-old", ["1,2", "3,4"], ["a", "b"])

    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "smoke" / "smoke.json").read_text())
    assert report == {"endpoint": ENDPOINT, "rows": 2, "passed": True, "problems": []}


def resolve(scripts_dir, tmp_path, *args):
    return run_script(
        scripts_dir / "resolve_version.py",
        "--model-package-group", GROUP,
        "--endpoint-name", ENDPOINT,
        "--output-dir", tmp_path,
        *args,
    )  # fmt: skip


def package(status: str, metadata: dict | None = None) -> dict:
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 3,
        "ModelPackageArn": ARN,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": status,
        "CustomerMetadataProperties": metadata or {},
    }


def test_a_version_that_is_not_approved_is_refused(aws, scripts_dir, tmp_path):
    aws["sagemaker"].add_response(
        "describe_model_package", package("PendingManualApproval"), {"ModelPackageName": ARN}
    )
    result = resolve(scripts_dir, tmp_path, "--model-package-arn", ARN)
    assert result.returncode == 1
    assert "version 3 is PendingManualApproval, not Approved" in result.stderr
    assert not (tmp_path / "release.json").exists()


def test_without_an_approved_version_there_is_nothing_to_deploy(aws, scripts_dir, tmp_path):
    aws["sagemaker"].add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": []},
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    result = resolve(scripts_dir, tmp_path)
    assert result.returncode == 1
    assert f"model package group {GROUP} has no Approved version" in result.stderr


def test_the_release_names_the_rows_and_a_missing_endpoint(aws, scripts_dir, tmp_path):
    metadata = {"HeldOutRows": "s3://b/rows", "BatchPredictions": "s3://b/transform"}
    sagemaker = aws["sagemaker"]
    sagemaker.add_response(
        "describe_model_package", package("Approved", metadata), {"ModelPackageName": ARN}
    )
    sagemaker.add_client_error(
        "describe_endpoint",
        "ValidationException",
        f'Could not find endpoint "{ENDPOINT}".',
        expected_params={"EndpointName": ENDPOINT},
    )
    result = resolve(scripts_dir, tmp_path, "--model-package-arn", ARN)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "release.json").read_text()) == {
        "ModelPackageArn": ARN,
        "ModelPackageVersion": 3,
        "HeldOutRows": "s3://b/rows",
        "BatchPredictions": "s3://b/transform",
        "EndpointName": ENDPOINT,
        "PreviousEndpointConfig": "",
    }
