"""Find the model version a deployment releases, and what the stage serves before it.

Runs as the first step of the deploy pipeline (in the scikit-learn container, whose boto3
reaches SageMaker with the pipeline's role; locally, the runner's stand-in). Writes
release.json for the steps after it:

    ModelPackageArn         the version to deploy: the one given, else the newest Approved
    ModelPackageVersion
    HeldOutRows             S3 prefix of the rows the build pipeline held out (batch.csv)
    BatchPredictions        S3 prefix of that version's batch transform output
    EndpointName            the stage's endpoint
    PreviousEndpointConfig  the config the endpoint serves now ("" when it does not exist):
                            the smoke test puts it back if the new version fails

A version that is not Approved is refused: nothing is deployed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import boto3
from botocore.exceptions import ClientError


def fail(message: str) -> NoReturn:
    print(f"resolve_version: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-package-group", required=True)
    parser.add_argument("--model-package-arn", default="", help="default: newest Approved")
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--output-dir", default="/opt/ml/processing/release")
    return parser.parse_args()


def newest_approved(sagemaker, group: str) -> str:
    found = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not found:
        fail(f"model package group {group} has no Approved version: approve one first")
    return found[0]["ModelPackageArn"]


def previous_config(sagemaker, endpoint: str) -> str:
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if "Could not find endpoint" in error.response["Error"].get("Message", ""):
            return ""
        raise
    if described["EndpointStatus"] != "InService":
        fail(
            f"endpoint {endpoint} is {described['EndpointStatus']}, not InService: wait for it, "
            "or delete it if it failed, then deploy again"
        )
    return described["EndpointConfigName"]


def main() -> None:
    args = parse_args()
    sagemaker = boto3.client("sagemaker")
    arn = args.model_package_arn or newest_approved(sagemaker, args.model_package_group)
    try:
        package = sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        fail(f"model package {arn} cannot be read: {error.response['Error']['Message']}")
    if package.get("ModelPackageGroupName") != args.model_package_group:
        fail(f"{arn} is not a version of {args.model_package_group}")
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        fail(
            f"version {package.get('ModelPackageVersion')} is {status}, not Approved: only an "
            "approved version is deployed (approve it first)"
        )
    metadata = package.get("CustomerMetadataProperties") or {}
    missing = [key for key in ("HeldOutRows", "BatchPredictions") if not metadata.get(key)]
    if missing:
        fail(
            f"version {package.get('ModelPackageVersion')} does not record {', '.join(missing)} "
            "(registered by an older build pipeline): register a new version to deploy it"
        )
    release = {
        "ModelPackageArn": package["ModelPackageArn"],
        "ModelPackageVersion": package.get("ModelPackageVersion"),
        "HeldOutRows": metadata["HeldOutRows"],
        "BatchPredictions": metadata["BatchPredictions"],
        "EndpointName": args.endpoint_name,
        "PreviousEndpointConfig": previous_config(sagemaker, args.endpoint_name),
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "release.json").write_text(json.dumps(release, indent=2))
    print(
        f"resolve_version: deploying version {release['ModelPackageVersion']} to "
        f"{args.endpoint_name} (serving now: {release['PreviousEndpointConfig'] or 'nothing'})"
    )


if __name__ == "__main__":
    main()
