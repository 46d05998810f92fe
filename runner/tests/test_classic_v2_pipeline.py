"""A pipeline this package did not write, built with SDK v2's classic API, run end to end.

The pipeline (tests/classic_v2/pipeline.py) is built offline through the `offline` extra,
exactly as its author would build it for the account; the runner executes its definition.
Needs `sagemaker==2.257.*` (the `test` extra).
"""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest

from classic_v2.pipeline import get_pipeline
from sagemaker_pipelines_local import LocalModelRegistry, LocalObjectStore, run_pipeline
from sagemaker_pipelines_local.offline import build_definition, default_bucket

REGION = "eu-west-1"
BUCKET = default_bucket(REGION)
ROLE = "arn:aws:iam::123456789012:role/abalone-sagemaker"
SEXES = ("M", "F", "I")
DATA = f"s3://{BUCKET}/abalone/data.csv"


def abalone_csv(path):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sex", "length", "rings"])
        for i in range(40):
            sex = SEXES[i % 3]
            writer.writerow([sex, round(0.3 + i / 100, 3), {"M": 11, "F": 12, "I": 7}[sex] + i % 2])
    return path


def build(boto_session):
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    from sagemaker.workflow.pipeline_context import PipelineSession

    session = PipelineSession(boto_session=boto_session, default_bucket=BUCKET)
    return get_pipeline(session, ROLE, REGION)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The definition and the SDK's uploads, built once (importing SDK v2 takes seconds)."""
    uploads = tmp_path_factory.mktemp("uploads")
    return build_definition(build, region=REGION, bucket=BUCKET, workdir=uploads), uploads


@pytest.fixture
def workdir(built, tmp_path):
    """A workspace holding the SDK's uploads and the sample data."""
    workdir = tmp_path / ".local"
    shutil.copytree(built[1] / "s3", workdir / "s3")
    LocalObjectStore(workdir).put_file(abalone_csv(tmp_path / "abalone.csv"), DATA)
    return workdir


def run(built, workdir, **parameters: str):
    """`run_pipeline` on the sample, as the pipeline's author would call it."""
    return run_pipeline(
        built[0],
        workdir=workdir,
        pipeline_name="AbalonePipeline",
        region=REGION,
        parameters={"InputDataUrl": DATA, **parameters},
    )


def test_a_classic_v2_pipeline_runs_end_to_end(built, workdir):
    result = run(built, workdir)

    assert result.status == "Succeeded", result.failure_reason
    ran = {step["name"]: step["status"] for step in result.steps}
    assert ran.pop("AbaloneMseTooHigh") == "NotRun"
    assert set(ran.values()) == {"Succeeded"}, ran
    assert {
        "PreprocessAbaloneData",
        "TrainAbaloneModel",
        "EvaluateAbaloneModel",
        "CheckMseAbaloneEvaluation",
        "AbaloneTransform",
    } <= set(ran)
    # One prediction per batch row, each the mean rings of the row's sex.
    transform = next(s for s in result.steps if s["name"] == "AbaloneTransform")
    output = transform["properties"]["TransformOutput"]["S3OutputPath"]
    (predictions,) = LocalObjectStore(workdir).list(output)
    values = [float(v) for v in LocalObjectStore(workdir).read_text(predictions).split()]
    assert len(values) == 10 and all(6 < v < 13 for v in values), values
    # The registration: one version, pending approval, with the evaluation's metrics.
    (package,) = LocalModelRegistry(workdir).list_packages("AbaloneModelPackageGroup")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageArn"].startswith(f"arn:aws:sagemaker:{REGION}:")
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["Content"]
    assert statistics["regression_metrics"]["mse"]["value"] < 30
    assert json.loads((result.run_dir / "run.json").read_text())["region"] == REGION


def test_the_condition_fails_the_execution_with_the_fail_step_message(built, workdir):
    result = run(built, workdir, MseThreshold="0.0001")

    assert result.status == "Failed"
    assert "MSE above the threshold 0.0001" in result.failure_reason
    assert LocalModelRegistry(workdir).list_groups() == []
