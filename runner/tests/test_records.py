"""The typed records write the JSON files the report, prune and the generated projects read."""

from __future__ import annotations

import json

from sagemaker_pipelines_local import LocalModelRegistry, run_pipeline
from sagemaker_pipelines_local.records import RunRecord
from test_runner import REGION, gated_pipeline, register_pipeline


def test_run_json_round_trips_through_the_run_record(store, workdir, tmp_path):
    result = run_pipeline(
        gated_pipeline(store, tmp_path), workdir=workdir, pipeline_name="demo", region=REGION
    )
    data = json.loads(result.record_path.read_text())
    assert list(data)[:3] == ["schema_version", "execution_id", "execution_arn"]
    assert [s["name"] for s in data["not_run"]] == ["Stop"]
    again = RunRecord.from_dict(data).to_dict()
    assert json.dumps(again) == json.dumps(data)  # same keys, same order, same values
    record = RunRecord.from_dict(data)
    assert record.steps[0].environment is not None and record.steps[0].status == "Succeeded"


def test_model_package_file_keeps_its_keys_in_order(store, workdir):
    result = run_pipeline(
        register_pipeline(store), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert result.status == "Succeeded", result.failure_reason
    package = LocalModelRegistry(workdir).get("demo-group", 1)
    assert list(package)[:6] == [
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelPackageStatus",
        "ModelApprovalStatus",
        "CreationTime",
    ]
    assert package["PipelineExecutionId"] == result.execution_id
