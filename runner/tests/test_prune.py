"""prune_workspace: old runs and their objects go; the registry, what it needs, the newest stay."""

from __future__ import annotations

import json

import pytest

from sagemaker_pipelines_local import (
    LocalModelRegistry,
    LocalObjectStore,
    WorkspaceBusyError,
    prune_workspace,
    run_pipeline,
)
from sagemaker_pipelines_local.runs import runner_process
from test_runner import BUCKET, REGION, gated_pipeline, register_pipeline


def _size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture
def workspace(tmp_path):
    """Three gated runs, then a registering run; the registry also refers to an object of run 1."""
    workdir = tmp_path / "local"
    store = LocalObjectStore(workdir)
    ids = []
    for n in range(3):
        result = run_pipeline(
            gated_pipeline(store, tmp_path), workdir=workdir, pipeline_name="demo",
            region=REGION, execution_id=f"gated{n}",
        )  # fmt: skip
        assert result.status == "Succeeded", result.failure_reason
        ids.append(result.execution_id)
    registering = run_pipeline(
        register_pipeline(store), workdir=workdir, pipeline_name="demo", region=REGION,
        execution_id="registers",
    )  # fmt: skip
    assert registering.status == "Succeeded"
    kept_object = f"{BUCKET}/runs/gated0/evaluation/evaluation.json"
    assert store.exists(kept_object)
    LocalModelRegistry(workdir).register(
        "demo-group", {"ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": kept_object}}}},
        region=REGION,
    )  # fmt: skip
    return workdir, store, kept_object


def test_prune_removes_old_runs_and_their_objects_and_keeps_what_models_need(workspace):
    workdir, store, kept_object = workspace
    registry_before = {p.name: p.read_bytes() for p in (workdir / "registry").rglob("*.json")}
    s3_run = workdir / "s3" / "test-bucket" / "runs"
    removable = (
        _size(workdir / "runs" / "gated0") + _size(workdir / "runs" / "gated1")
        + _size(s3_run / "gated0") + _size(s3_run / "gated1")
        - (workdir / "s3" / "test-bucket" / "runs" / "gated0" / "evaluation" / "evaluation.json")
        .stat().st_size
    )  # fmt: skip

    preview = prune_workspace(workdir, keep=2, dry_run=True)
    assert sorted(preview.removed_runs) == ["gated0", "gated1"]
    assert (workdir / "runs" / "gated0").is_dir(), "a dry run removed something"

    result = prune_workspace(workdir, keep=2)
    assert sorted(result.removed_runs) == ["gated0", "gated1"]
    # The newest two runs stay (one of them registered a model version).
    assert sorted(result.kept_runs) == ["gated2", "registers"]
    assert result.bytes_freed == preview.bytes_freed == removable
    assert result.removed_objects == preview.removed_objects > 0
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["gated2", "registers"]
    assert not (s3_run / "gated1").exists()
    assert store.exists(kept_object), "an object a model version refers to was removed"
    assert store.list(f"{BUCKET}/runs/gated2/")
    assert store.exists(f"{BUCKET}/models/job/output/model.tar.gz")
    registry_after = {p.name: p.read_bytes() for p in (workdir / "registry").rglob("*.json")}
    assert registry_after == registry_before
    assert prune_workspace(workdir, keep=2).removed_runs == []
    # With no run to keep, the run that registered a model version still stays.
    final = prune_workspace(workdir, keep=0)
    assert (final.removed_runs, final.kept_runs) == (["gated2"], ["registers"])
    assert store.exists(kept_object)


def test_older_than_keeps_the_recent_runs(workspace):
    workdir, _store, _ = workspace
    assert prune_workspace(workdir, keep=0, older_than_days=1).removed_runs == []
    record_path = workdir / "runs" / "gated1" / "run.json"
    record = json.loads(record_path.read_text())
    record["start_time"] = "2020-01-01T00:00:00.000Z"
    record_path.write_text(json.dumps(record))
    assert prune_workspace(workdir, keep=0, older_than_days=1).removed_runs == ["gated1"]


def test_prune_is_refused_while_a_run_executes(workspace):
    workdir, _store, _ = workspace
    live = workdir / "runs" / "live"
    live.mkdir()
    (live / "run.json").write_text(
        json.dumps({"status": "Executing", "runner": runner_process(), "steps": []})
    )
    with pytest.raises(WorkspaceBusyError, match="Execution live is running"):
        prune_workspace(workdir, keep=0)
    assert (workdir / "runs" / "gated0").is_dir()
