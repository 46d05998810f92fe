"""Talk to the AWS account: create or update the pipelines, start executions, approve and
deploy model versions, invoke endpoints.

Every client honours AWS_ENDPOINT_URL (boto3 reads it), which the tests point at a moto server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import Settings, package_version

TERMINAL = {"Succeeded", "Failed", "Stopped"}
_VERBS = {"Approved": "approve", "Rejected": "reject"}


class AwsError(RuntimeError):
    """An AWS call failed in a way the user can act on."""


# botocore's error codes, grouped by what the user has to do about them.
_ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_REJECTED = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
}
_NOT_FOUND = {"ResourceNotFound", "ResourceNotFoundException", "NoSuchBucket", "NotFound", "404"}
# SageMaker answers some lookups of a missing resource with a ValidationException.
_NOT_FOUND_TEXT = re.compile(r"does not exist|could not find|not found", re.IGNORECASE)


def explain(error: Exception, doing: str, not_found: str | None = None) -> AwsError:
    """The AwsError that says what went wrong while ``doing`` and what to do about it.

    Names the kind of failure (no credentials, endpoint unreachable, access denied, not
    found); never the credentials themselves.
    """
    from botocore import exceptions as bx

    if isinstance(error, bx.ProfileNotFound):
        return AwsError(
            f"{doing}: the AWS profile '{error.kwargs.get('profile')}' is not configured. Set "
            "AWS_PROFILE to a profile that `aws configure list-profiles` shows, or unset it."
        )
    if isinstance(error, bx.PartialCredentialsError):
        return AwsError(
            f"{doing}: incomplete AWS credentials ({error.kwargs.get('provider')} has no "
            f"{error.kwargs.get('cred_var')}). Complete them, or sign in with `aws sso login`."
        )
    if isinstance(
        error,
        (
            bx.NoCredentialsError,
            bx.CredentialRetrievalError,
            bx.SSOTokenLoadError,
            bx.UnauthorizedSSOTokenError,
            bx.TokenRetrievalError,
        ),
    ):
        return AwsError(
            f"{doing}: no usable AWS credentials were found ({type(error).__name__}). Sign in "
            "(`aws sso login`, or `aws configure`), or set AWS_PROFILE to a configured profile, "
            "then run the command again."
        )
    if isinstance(
        error,
        (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError),
    ):
        return AwsError(
            f"{doing}: could not reach the AWS endpoint {error.kwargs.get('endpoint_url')} "
            f"({type(error).__name__}). Check the network connection, the region, and "
            "AWS_ENDPOINT_URL if it is set."
        )
    if isinstance(error, bx.ReadTimeoutError):
        return AwsError(
            f"{doing}: the AWS endpoint {error.kwargs.get('endpoint_url')} did not answer in "
            "time. Try again; check the network connection if it keeps happening."
        )
    if isinstance(error, bx.NoRegionError):
        return AwsError(f"{doing}: no AWS region: set SAGEMAKER_REGION or AWS_DEFAULT_REGION.")
    if isinstance(error, bx.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = str(error.response.get("Error", {}).get("Message", "")).strip()
        if code in _ACCESS_DENIED:
            return AwsError(
                f"{doing}: access denied ({code}): {message} Use a role or profile that has this "
                "permission, or ask an administrator of the account to grant it."
            )
        if code in _EXPIRED:
            return AwsError(
                f"{doing}: the AWS credentials have expired ({code}). Sign in again "
                "(`aws sso login`) or refresh them, then run the command again."
            )
        if code in _REJECTED:
            return AwsError(
                f"{doing}: AWS rejected the credentials ({code}): they do not belong to this "
                "account or are mistyped. Check AWS_PROFILE or the access key you set."
            )
        missing = code == "ValidationException" and _NOT_FOUND_TEXT.search(message)
        if code in _NOT_FOUND or missing:
            return AwsError(f"{doing}: {not_found or 'not found'} ({code}: {message})")
        return AwsError(f"{doing} failed: {code}: {message}")
    if isinstance(error, bx.BotoCoreError):
        return AwsError(f"{doing} failed: {error}")
    return AwsError(f"{doing} failed: {type(error).__name__}: {error}")


def is_aws_error(error: BaseException) -> bool:
    """Whether ``error`` comes from botocore (the SDKs raise botocore's errors through)."""
    try:
        from botocore import exceptions as bx
    except ImportError:
        return False
    return isinstance(error, (bx.BotoCoreError, bx.ClientError))


@contextmanager
def _calling_aws(doing: str, not_found: str | None = None) -> Iterator[None]:
    """Turn botocore's errors inside the block into an AwsError that says what to do."""
    try:
        yield
    except Exception as error:
        if is_aws_error(error):
            raise explain(error, doing, not_found) from None
        raise


def _boto_session(settings: Settings) -> Any:
    import boto3

    return boto3.Session(region_name=settings.region)


def _account_bucket(settings: Settings, boto_session: Any) -> str:
    if settings.bucket:
        return settings.bucket
    account = boto_session.client("sts").get_caller_identity()["Account"]
    return f"sagemaker-{settings.region}-{account}"


def upsert(settings: Settings, role_arn: str | None) -> list[dict[str, str]]:
    """Create both pipelines (build, then deploy), or update those that exist. Returns, for
    each, its ARN, what was done and the sample data's URI if it was uploaded."""
    role_arn = role_arn or settings.role_arn
    if not role_arn:
        raise AwsError(
            "No execution role: pass --role-arn ARN or set SAGEMAKER_ROLE_ARN "
            "(the role the pipeline's jobs run as)."
        )
    if settings.encrypt_and_isolate and not settings.kms_key_arn:
        raise AwsError(
            "No KMS key: encrypt_and_isolate is on, so set SAGEMAKER_KMS_KEY_ARN to the key the "
            "jobs encrypt with (the stack's DataKeyArn output)."
        )
    from .pipeline import get_deploy_pipeline, get_pipeline, pipeline_session
    from .provenance import place_build

    with _calling_aws(f"Preparing to upsert pipeline '{settings.pipeline_name}'"):
        boto_session = _boto_session(settings)
        settings = replace(settings, bucket=_account_bucket(settings, boto_session))
        s3 = boto_session.client("s3")
        _ensure_bucket(s3, settings)
        session = pipeline_session(settings, boto_session)
        client = boto_session.client("sagemaker")
    results = []
    for name, build, describe in (
        (settings.pipeline_name, get_pipeline, "train, evaluate, gate and register"),
        (
            settings.deploy_pipeline_name,
            get_deploy_pipeline,
            "deploy an Approved version to a stage, smoke-test it",
        ),
    ):
        with _calling_aws(f"Creating or updating pipeline '{name}'"):
            built = build(settings, session, role_arn).definition()
            definition = place_build(
                built, lambda bucket, key, body: s3.put_object(Bucket=bucket, Key=key, Body=body)
            )
            uploaded = ""
            if name == settings.pipeline_name:
                default_input = _input_data_default(definition)
                uploaded = _upload_sample_if_missing(s3, settings.sample_data, default_input)
            request = {
                "PipelineName": name,
                "PipelineDefinition": definition,
                "RoleArn": role_arn,
                "PipelineDescription": f"{settings.project_name}: {describe}.",
                # How many steps of an execution run at once (run-local takes the same).
                "ParallelismConfiguration": {
                    "MaxParallelExecutionSteps": settings.max_parallel_steps
                },
            }
            response, action = _create_or_update(client, request, settings.project_slug)
        results.append(
            {"PipelineArn": response["PipelineArn"], "action": action, "sample": uploaded}
        )
    return results


def _create_or_update(client: Any, request: dict[str, Any], project: str) -> tuple[dict, str]:
    from botocore.exceptions import ClientError

    try:
        tags = [{"Key": "project", "Value": project}]
        return client.create_pipeline(**request, Tags=tags), "created"
    except ClientError as error:
        if "already exists" not in str(error) and error.response["Error"]["Code"] not in (
            "ResourceInUse",
            "ResourceInUseException",
        ):
            raise  # explained by upsert()
        return client.update_pipeline(**request), "updated"


def _ensure_bucket(s3: Any, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=settings.bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "403", "NoSuchBucket"):
            raise  # credentials, throttling: explained by the caller
        raise AwsError(
            f"Bucket '{settings.bucket}' is not reachable ({error.response['Error']['Code']}). "
            "Deploy the project's stack or set SAGEMAKER_BUCKET to an existing, encrypted bucket."
        ) from error


def _input_data_default(definition: str) -> str:
    """The S3 URI the definition's InputDataUri parameter defaults to."""
    (uri,) = [
        parameter["DefaultValue"]
        for parameter in json.loads(definition)["Parameters"]
        if parameter["Name"] == "InputDataUri"
    ]
    return uri


def _upload_sample_if_missing(s3: Any, sample: Path, uri: str) -> str:
    """The default InputDataUri points at the sample data: put it there once."""
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return ""
    except ClientError:
        s3.upload_file(str(sample), bucket, key)
        return uri


def pipeline_parameters(settings: Settings, name: str | None = None) -> dict[str, dict[str, Any]]:
    """The parameters of a pipeline as deployed (default: the build pipeline):
    name -> {Type, DefaultValue}."""
    name = name or settings.pipeline_name
    with _calling_aws(
        f"Reading pipeline '{name}'",
        not_found=f"the pipeline does not exist in {settings.region}: run `upsert` first",
    ):
        client = _boto_session(settings).client("sagemaker")
        described = client.describe_pipeline(PipelineName=name)
    definition = json.loads(described["PipelineDefinition"])
    return {p["Name"]: p for p in definition.get("Parameters", [])}


def start(
    settings: Settings,
    parameters: dict[str, str],
    wait: bool = False,
    poll_seconds: float = 30.0,
    echo: Any = print,
    pipeline: str | None = None,
    from_step: str | None = None,
) -> dict[str, Any]:
    """Start an execution of a pipeline (default: the build pipeline); with `wait`, poll
    until it ends and name the steps that failed. With `from_step`, a selective execution of
    that step and every step after it, reusing the results of the pipeline's latest
    execution for the steps before it."""
    name = pipeline or settings.pipeline_name
    known = pipeline_parameters(settings, name)
    selective = _selective_execution(settings, name, from_step) if from_step else {}
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise AwsError(
            f"Unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"the pipeline has: {', '.join(sorted(known))}."
        )
    with _calling_aws(f"Starting pipeline '{name}'"):
        client = _boto_session(settings).client("sagemaker")
        response = client.start_pipeline_execution(
            PipelineName=name,
            PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
            **selective,
        )
        arn = response["PipelineExecutionArn"]
        status = "Executing"
        while wait and status not in TERMINAL:
            time.sleep(poll_seconds)
            described = client.describe_pipeline_execution(PipelineExecutionArn=arn)
            status = described["PipelineExecutionStatus"]
            echo(f"{arn}: {status}")
        failures = _failed_steps(client, arn) if wait and status != "Succeeded" else []
    config = selective.get("SelectiveExecutionConfig") or {}
    return {
        "PipelineExecutionArn": arn,
        "status": status,
        "failures": failures,
        "selected": [step["StepName"] for step in config.get("SelectedSteps", [])],
        "source": config.get("SourcePipelineExecutionArn"),
    }


def _selective_execution(settings: Settings, name: str, step: str) -> dict[str, Any]:
    """StartPipelineExecution's SelectiveExecutionConfig for "from `step` on": the steps
    after it in the deployed definition, the latest execution as the source."""
    try:  # the runner reads a definition's graph, the account's one too
        from sagemaker_pipelines_local import selective_execution_config, steps_from
    except ImportError:
        raise AwsError(
            "--from-step reads the pipeline's graph with the local runner: run "
            "`make install` (it is in the dev dependencies)."
        ) from None
    with _calling_aws(
        f"Reading pipeline '{name}' and its executions",
        not_found=f"the pipeline does not exist in {settings.region}: run `upsert` first",
    ):
        client = _boto_session(settings).client("sagemaker")
        definition = client.describe_pipeline(PipelineName=name)["PipelineDefinition"]
        latest = client.list_pipeline_executions(
            PipelineName=name, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
        )["PipelineExecutionSummaries"]
    try:
        selected = steps_from(definition, step)
    except ValueError as error:
        raise AwsError(f"--from-step: {error}.") from None
    if not latest:
        raise AwsError(
            f"--from-step: {name} has no execution to take the earlier steps' results from: "
            "start it once without --from-step."
        )
    source = latest[0]["PipelineExecutionArn"]
    return {"SelectiveExecutionConfig": selective_execution_config(source, selected)}


def _failed_steps(client: Any, arn: str) -> list[str]:
    """'Step: reason' for each failed step of an execution (as the account reports them)."""
    failed = []
    for page in client.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=arn
    ):
        for step in page["PipelineExecutionSteps"]:
            if step.get("StepStatus") == "Failed":
                failed.append(f"{step['StepName']}: {step.get('FailureReason', 'no reason given')}")
    return failed


# Step metadata key -> (Describe call, its name parameter, its start and end fields).
_JOBS = {
    "TrainingJob": (
        "describe_training_job",
        "TrainingJobName",
        "TrainingStartTime",
        "ResourceConfig",
    ),
    "ProcessingJob": (
        "describe_processing_job",
        "ProcessingJobName",
        "ProcessingStartTime",
        "ProcessingResources",
    ),
    "TransformJob": (
        "describe_transform_job",
        "TransformJobName",
        "TransformStartTime",
        "TransformResources",
    ),
}


def billed_jobs(settings: Settings, arn: str) -> list[dict[str, Any]]:
    """What the account reports each job of an execution billed, step by step.

    A training job: `BillableTimeInSeconds` (per instance). A processing or transform job has
    no billable field: its start and end times (`basis` says which). A cached step or one
    reused from another execution ran no job: `not_billed` says why. Steps with no job
    (model, register, condition, fail) are left out.
    """
    rows: list[dict[str, Any]] = []
    with _calling_aws(f"Reading the steps of execution {arn}"):
        client = _boto_session(settings).client("sagemaker")
        for page in client.get_paginator("list_pipeline_execution_steps").paginate(
            PipelineExecutionArn=arn
        ):
            for step in page["PipelineExecutionSteps"]:
                row = _billed(client, step)
                if row is not None:
                    rows.append(row)
    return rows


def _billed(client: Any, step: dict[str, Any]) -> dict[str, Any] | None:
    name = step["StepName"]
    if step.get("CacheHitResult"):
        source = step["CacheHitResult"].get("SourcePipelineExecutionArn")
        return {"step": name, "not_billed": f"cache hit (the outputs of {source})"}
    if step.get("SelectiveExecutionResult"):
        source = step["SelectiveExecutionResult"].get("SourcePipelineExecutionArn")
        return {"step": name, "not_billed": f"reused from {source}"}
    metadata = step.get("Metadata") or {}
    kind = next((k for k in _JOBS if metadata.get(k, {}).get("Arn")), None)
    if kind is None:
        return None
    describe, name_key, start_key, resources_key = _JOBS[kind]
    job_name = metadata[kind]["Arn"].split("/", 1)[1]
    job = getattr(client, describe)(**{name_key: job_name})
    resources = job.get(resources_key) or {}
    resources = resources.get("ClusterConfig", resources)  # processing nests its instances
    row = {
        "step": name,
        "job": job_name,
        "kind": kind,
        "instance_type": resources.get("InstanceType"),
        "instance_count": resources.get("InstanceCount"),
        "seconds": None,
        "basis": None,
    }
    if kind == "TrainingJob" and job.get("BillableTimeInSeconds") is not None:
        row["seconds"], row["basis"] = job["BillableTimeInSeconds"], "BillableTimeInSeconds"
        return row
    end_key = start_key.replace("Start", "End")
    if job.get(start_key) and job.get(end_key):
        row["seconds"] = round((job[end_key] - job[start_key]).total_seconds())
        row["basis"] = f"{start_key} to {end_key}"
    return row


def list_model_packages(settings: Settings) -> list[dict[str, Any]]:
    packages: list[dict[str, Any]] = []
    with _calling_aws(
        f"Listing model package group '{settings.model_package_group_name}'",
        not_found="the model package group does not exist: run the pipeline once to create it",
    ):
        client = _boto_session(settings).client("sagemaker")
        for page in client.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=settings.model_package_group_name
        ):
            packages.extend(page["ModelPackageSummaryList"])
    return sorted(packages, key=lambda p: p.get("ModelPackageVersion", 0))


def model_package(settings: Settings, version: int) -> dict[str, Any]:
    """A version of the project's model package group in the account, described."""
    packages = {p.get("ModelPackageVersion"): p for p in list_model_packages(settings)}
    if version not in packages:
        there = ", ".join(str(v) for v in sorted(packages)) or "none"
        raise AwsError(
            f"Version {version} is not in model package group "
            f"'{settings.model_package_group_name}' in {settings.region} (versions: {there}); "
            "`models list --aws` shows them."
        )
    with _calling_aws(f"Reading version {version} of '{settings.model_package_group_name}'"):
        client = _boto_session(settings).client("sagemaker")
        return client.describe_model_package(ModelPackageName=packages[version]["ModelPackageArn"])


def read_json_object(settings: Settings, uri: str) -> Any | None:
    """A small JSON object of the account's S3 (a version's input fingerprint); None when it
    cannot be read or is not JSON: what shows it then falls back to the URI."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        s3 = _boto_session(settings).client("s3")
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (BotoCoreError, ClientError, ValueError):
        return None


def set_approval(settings: Settings, version: int, status: str) -> dict[str, Any]:
    """Approve or reject a version in the account. An approval is what the account's
    EventBridge rule (the project's stack) answers by deploying the version to staging."""
    package = model_package(settings, version)
    with _calling_aws(f"Setting version {version} {status}"):
        client = _boto_session(settings).client("sagemaker")
        client.update_model_package(
            ModelPackageArn=package["ModelPackageArn"],
            ModelApprovalStatus=status,
            ApprovalDescription=f"{status} with `models {_VERBS[status]} {version} --aws`",
        )
    return {**package, "ModelApprovalStatus": status}


def serving_package_arn(settings: Settings, stage: str) -> str | None:
    """The model package version (ARN) a stage's endpoint serves in the account, or None when
    the stage has no endpoint (or serves a model that is not a registered version)."""
    from botocore.exceptions import ClientError

    endpoint = settings.endpoint_name(stage)
    with _calling_aws(f"Reading endpoint '{endpoint}'"):
        client = _boto_session(settings).client("sagemaker")
        try:
            described = client.describe_endpoint(EndpointName=endpoint)
        except ClientError as error:
            missing = _NOT_FOUND_TEXT.search(str(error.response.get("Error", {}).get("Message")))
            if error.response["Error"]["Code"] == "ValidationException" and missing:
                return None
            raise
        config = client.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        model = client.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    containers = [model.get("PrimaryContainer") or {}, *(model.get("Containers") or [])]
    return next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)


def deploy(
    settings: Settings,
    stage: str,
    version: int | None,
    wait: bool = False,
    poll_seconds: float = 30.0,
    echo: Any = print,
) -> dict[str, Any]:
    """Start the deploy pipeline in the account for an Approved version: by default the
    newest Approved one for staging, and for prod the one staging serves (promotion)."""
    from .config import STAGES

    if version is None and stage != STAGES[0]:
        arn = serving_package_arn(settings, STAGES[0])
        if arn is None:
            raise AwsError(
                f"Nothing to promote to {stage}: endpoint '{settings.endpoint_name(STAGES[0])}' "
                f"serves no registered version in {settings.region}. Deploy to {STAGES[0]} "
                "first, or give --version N."
            )
        version = package_version(arn)
    if version is None:
        approved = [
            p for p in list_model_packages(settings) if p.get("ModelApprovalStatus") == "Approved"
        ]
        if not approved:
            raise AwsError(
                f"No Approved version in '{settings.model_package_group_name}' in "
                f"{settings.region}: approve one with `models approve VERSION --aws`."
            )
        package = approved[-1]
    else:
        package = model_package(settings, version)
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise AwsError(
            f"Version {package.get('ModelPackageVersion')} is {status}: only an Approved version "
            f"is deployed. Approve it first: `models approve {package.get('ModelPackageVersion')} "
            "--aws`."
        )
    echo(
        f"Deploying version {package['ModelPackageVersion']} to {stage} "
        f"(endpoint {settings.endpoint_name(stage)}, {settings.region})..."
    )
    started = start(
        settings,
        {"ModelPackageArn": package["ModelPackageArn"], "Stage": stage},
        wait=wait,
        poll_seconds=poll_seconds,
        echo=echo,
        pipeline=settings.deploy_pipeline_name,
    )
    return {**started, "version": package["ModelPackageVersion"]}


def invoke_endpoint(settings: Settings, stage: str, body: bytes, content_type: str) -> bytes:
    """Send a request to a stage's endpoint in the account; its answer."""
    endpoint = settings.endpoint_name(stage)
    with _calling_aws(
        f"Invoking endpoint '{endpoint}'",
        not_found=f"there is no endpoint for {stage} in {settings.region}: deploy it first",
    ):
        client = _boto_session(settings).client("sagemaker-runtime")
        response = client.invoke_endpoint(
            EndpointName=endpoint, Body=body, ContentType=content_type, Accept="text/csv"
        )
        return response["Body"].read()


def delete_endpoint(settings: Settings, stage: str) -> None:
    """Delete a stage's endpoint in the account (SageMaker keeps its configs and models)."""
    endpoint = settings.endpoint_name(stage)
    with _calling_aws(
        f"Deleting endpoint '{endpoint}'",
        not_found=f"there is no endpoint for {stage} in {settings.region}",
    ):
        _boto_session(settings).client("sagemaker").delete_endpoint(EndpointName=endpoint)
