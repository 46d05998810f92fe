"""Talk to the AWS account: create or update the pipeline, start executions, list models.

Every client honours AWS_ENDPOINT_URL (boto3 reads it), which the tests point at a moto server.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from .config import Settings

TERMINAL = {"Succeeded", "Failed", "Stopped"}


class AwsError(RuntimeError):
    """An AWS call failed in a way the user can act on."""


def _boto_session(settings: Settings) -> Any:
    import boto3

    return boto3.Session(region_name=settings.region)


def _account_bucket(settings: Settings, boto_session: Any) -> str:
    if settings.bucket:
        return settings.bucket
    account = boto_session.client("sts").get_caller_identity()["Account"]
    return f"sagemaker-{settings.region}-{account}"


def upsert(settings: Settings, role_arn: str | None) -> dict[str, str]:
    """Create the pipeline, or update it if it exists. Returns its ARN and what was done."""
    from botocore.exceptions import ClientError

    from .pipeline import get_pipeline, pipeline_session

    role_arn = role_arn or settings.role_arn
    if not role_arn:
        raise AwsError(
            "No execution role: pass --role-arn ARN or set SAGEMAKER_ROLE_ARN "
            "(the role the pipeline's jobs run as)."
        )
    boto_session = _boto_session(settings)
    settings = replace(settings, bucket=_account_bucket(settings, boto_session))
    s3 = boto_session.client("s3")
    _ensure_bucket(s3, settings)
    uploaded = _upload_sample_if_missing(s3, settings)

    session = pipeline_session(settings, boto_session)
    definition = get_pipeline(settings, session, role_arn).definition()
    client = boto_session.client("sagemaker")
    request = {
        "PipelineName": settings.pipeline_name,
        "PipelineDefinition": definition,
        "RoleArn": role_arn,
        "PipelineDescription": f"{settings.project_name}: train, evaluate, gate and register.",
    }
    try:
        response = client.create_pipeline(
            **request,
            Tags=[{"Key": "project", "Value": settings.project_slug}],
        )
        action = "created"
    except ClientError as error:
        if "already exists" not in str(error) and error.response["Error"]["Code"] not in (
            "ResourceInUse",
            "ResourceInUseException",
        ):
            raise AwsError(f"create_pipeline failed: {error}") from error
        response = client.update_pipeline(**request)
        action = "updated"
    return {"PipelineArn": response["PipelineArn"], "action": action, "sample": uploaded}


def _ensure_bucket(s3: Any, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=settings.bucket)
    except ClientError as error:
        raise AwsError(
            f"Bucket '{settings.bucket}' is not reachable ({error.response['Error']['Code']}). "
            "Deploy the project's stack or set SAGEMAKER_BUCKET to an existing, encrypted bucket."
        ) from error


def _upload_sample_if_missing(s3: Any, settings: Settings) -> str:
    """The default InputDataUri points at the sample data: put it there once."""
    from botocore.exceptions import ClientError

    key = f"{settings.project_slug}/input/{settings.sample_data.name}"
    try:
        s3.head_object(Bucket=settings.bucket, Key=key)
        return ""
    except ClientError:
        s3.upload_file(str(settings.sample_data), settings.bucket, key)
        return f"s3://{settings.bucket}/{key}"


def pipeline_parameters(settings: Settings) -> dict[str, dict[str, Any]]:
    """The parameters of the pipeline as deployed: name -> {Type, DefaultValue}."""
    client = _boto_session(settings).client("sagemaker")
    try:
        described = client.describe_pipeline(PipelineName=settings.pipeline_name)
    except Exception as error:  # botocore raises a generated class per error code
        raise AwsError(
            f"Pipeline '{settings.pipeline_name}' not found in {settings.region}: "
            f"run `upsert` first ({error})."
        ) from error
    definition = json.loads(described["PipelineDefinition"])
    return {p["Name"]: p for p in definition.get("Parameters", [])}


def start(
    settings: Settings,
    parameters: dict[str, str],
    wait: bool = False,
    poll_seconds: float = 30.0,
    echo: Any = print,
) -> dict[str, str]:
    """Start an execution; with `wait`, poll until it ends."""
    known = pipeline_parameters(settings)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise AwsError(
            f"Unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"the pipeline has: {', '.join(sorted(known))}."
        )
    client = _boto_session(settings).client("sagemaker")
    response = client.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
    )
    arn = response["PipelineExecutionArn"]
    status = "Executing"
    while wait and status not in TERMINAL:
        time.sleep(poll_seconds)
        described = client.describe_pipeline_execution(PipelineExecutionArn=arn)
        status = described["PipelineExecutionStatus"]
        echo(f"{arn}: {status}")
    return {"PipelineExecutionArn": arn, "status": status}


def list_model_packages(settings: Settings) -> list[dict[str, Any]]:
    client = _boto_session(settings).client("sagemaker")
    packages: list[dict[str, Any]] = []
    for page in client.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=settings.model_package_group_name
    ):
        packages.extend(page["ModelPackageSummaryList"])
    return sorted(packages, key=lambda p: p.get("ModelPackageVersion", 0))
