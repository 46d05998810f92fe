"""Step caching: a job step with CacheConfig reuses its latest run with the same key."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from sagemaker_pipelines_local import run_pipeline
from sagemaker_pipelines_local.stepcache import parse_expire_after
from test_runner import (
    REGION,
    make_definition,
    output_uri,
    processing_step,
    put_script,
    read_run,
    run_output,
    s3_input,
    s3_output,
)

# Writes a random token: a step that ran again writes another one.
PRODUCE = """
    import os, pathlib, sys
    out = pathlib.Path("/opt/ml/processing/output")
    out.mkdir(parents=True, exist_ok=True)
    (out / "token.txt").write_text(os.urandom(8).hex() + " " + " ".join(sys.argv[1:]))
"""
CONSUME = """
    import pathlib, shutil
    out = pathlib.Path("/opt/ml/processing/copy")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy("/opt/ml/processing/input/token/token.txt", out / "token.txt")
"""


def pipeline(store, tmp_path, *, cache=None, arguments=("--size", "1")):
    put_script(store, tmp_path, "produce.py", PRODUCE)
    put_script(store, tmp_path, "consume.py", CONSUME)
    produce = processing_step(
        "Produce",
        "produce.py",
        arguments=arguments,
        outputs=[s3_output("token", run_output("token"), "/opt/ml/processing/output")],
    )
    consume = processing_step(
        "Consume",
        "consume.py",
        inputs=[
            s3_input("token", output_uri("Produce", "token"), "/opt/ml/processing/input/token")
        ],
        outputs=[s3_output("copy", run_output("copy"), "/opt/ml/processing/copy")],
    )
    if cache is not None:
        produce["CacheConfig"] = cache
    return make_definition([produce, consume])


def run(workdir, definition, events=None):
    result = run_pipeline(
        definition,
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        progress=events.append if events is not None else None,
    )
    assert result.status == "Succeeded", result.failure_reason
    return result


def token(result, step, output):
    [out] = [o for o in result.step(step)["outputs"] if o["name"] == output]
    return (Path(out["local_path"]) / "token.txt").read_text()


CACHED = {"Enabled": True, "ExpireAfter": "P30D"}


def test_an_unchanged_step_reuses_its_latest_run(store, workdir, tmp_path):
    first = run(workdir, pipeline(store, tmp_path, cache=CACHED))
    events = []
    second = run(workdir, pipeline(store, tmp_path, cache=CACHED), events)

    step = second.step("Produce")
    assert step["cache_hit"]["source_execution_id"] == first.execution_id
    assert step["cache_hit"]["SourcePipelineExecutionArn"].endswith(first.execution_id)
    assert token(second, "Produce", "token") == token(first, "Produce", "token")
    # The next step read the reused output (outputs named by the first execution's id).
    assert token(second, "Consume", "copy") == token(first, "Produce", "token")
    assert second.step("Consume")["cache_hit"] is None  # no CacheConfig: it ran again
    [hit] = [e for e in events if e.step_name == "Produce" and e.status == "Succeeded"]
    assert f"cache hit: the outputs of execution {first.execution_id}" in hit.message
    assert read_run(second)["steps"][0]["cache_hit"] == step["cache_hit"]
    html = second.report_path.read_text()
    assert f"cache hit ({first.execution_id})" in html


def test_a_changed_argument_disabled_caching_or_an_expired_entry_runs_the_step(
    store, workdir, tmp_path
):
    first = run(workdir, pipeline(store, tmp_path, cache=CACHED))
    changed = run(workdir, pipeline(store, tmp_path, cache=CACHED, arguments=("--size", "2")))
    disabled = run(workdir, pipeline(store, tmp_path, cache={"Enabled": False}))
    at_once = {"Enabled": True, "ExpireAfter": "PT0S"}  # expired as soon as it is written
    expired = run(workdir, pipeline(store, tmp_path, cache=at_once))
    tokens = {token(r, "Produce", "token") for r in (first, changed, disabled, expired)}
    assert len(tokens) == 4
    assert all(r.step("Produce")["cache_hit"] is None for r in (changed, disabled, expired))
    # The latest run per key is kept: the changed arguments now hit their own entry.
    again = run(workdir, pipeline(store, tmp_path, cache=CACHED, arguments=("--size", "2")))
    assert again.step("Produce")["cache_hit"]["source_execution_id"] == changed.execution_id


def test_an_entry_whose_outputs_are_gone_is_a_miss(store, workdir, tmp_path):
    first = run(workdir, pipeline(store, tmp_path, cache=CACHED))
    [out] = first.step("Produce")["outputs"]
    shutil.rmtree(out["local_path"])  # as pruning an old run removes its outputs
    second = run(workdir, pipeline(store, tmp_path, cache=CACHED))
    assert second.step("Produce")["cache_hit"] is None
    assert token(second, "Consume", "copy") == token(second, "Produce", "token")


def test_a_malformed_cache_config_is_refused_before_anything_runs(store, workdir, tmp_path):
    bad = pipeline(store, tmp_path, cache={"Enabled": True, "ExpireAfter": "30 days"})
    with pytest.raises(ValueError, match="ExpireAfter '30 days' is not an ISO 8601 duration"):
        run_pipeline(bad, workdir=workdir, pipeline_name="demo", region=REGION)
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", timedelta(days=30)),
        ("p30d", timedelta(days=30)),
        ("PT1H", timedelta(hours=1)),
        ("P4DT12H", timedelta(days=4, hours=12)),
        ("T16m", timedelta(minutes=16)),
        ("5y", timedelta(days=5 * 365)),
        ("P1M", timedelta(days=30)),
        ("PT1M", timedelta(minutes=1)),
    ],
)
def test_expire_after_durations(text, expected):
    assert parse_expire_after(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "30", "P1DT", "1 day"])
def test_expire_after_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not an ISO 8601 duration"):
        parse_expire_after(text)


def test_entries_live_in_the_workspace(store, workdir, tmp_path):
    run(workdir, pipeline(store, tmp_path, cache=CACHED))
    [entry] = (workdir / "cache" / "demo" / "Produce").glob("*.json")
    assert json.loads(entry.read_text())["step"] == "Produce"


# ---------------------------------------------------------------------------- selective
def test_steps_from_a_step_are_it_and_everything_after_it(store, tmp_path):
    from sagemaker_pipelines_local import steps_from

    definition = pipeline(store, tmp_path)
    assert steps_from(definition, "Produce") == ["Produce", "Consume"]
    assert steps_from(definition, "Consume") == ["Consume"]
    with pytest.raises(ValueError, match=r"'Nope' is not in the pipeline \(its steps: Produce"):
        steps_from(definition, "Nope")


def test_a_selective_execution_reuses_what_the_selected_steps_depend_on(store, workdir, tmp_path):
    from sagemaker_pipelines_local import latest_execution

    first = run(workdir, pipeline(store, tmp_path))
    source = latest_execution(workdir, "demo")
    assert source["execution_id"] == first.execution_id
    config = {
        "SourcePipelineExecutionArn": source["execution_arn"],
        "SelectedSteps": [{"StepName": "Consume"}],
    }
    events = []
    result = run_pipeline(
        pipeline(store, tmp_path),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        selective_execution=config,
        progress=events.append,
    )

    assert result.status == "Succeeded", result.failure_reason
    produce = result.step("Produce")
    assert produce["selective_execution_result"] == {
        "SourcePipelineExecutionArn": source["execution_arn"]
    }
    assert produce["outputs"] == first.step("Produce")["outputs"]  # not run again
    assert token(result, "Consume", "copy") == token(first, "Produce", "token")
    assert result.step("Consume")["selective_execution_result"] is None
    assert read_run(result)["selective_execution"] == config
    [reused] = [e for e in events if e.step_name == "Produce"]
    assert f"reused: the results of execution {first.execution_id}" in reused.message


def test_a_selective_execution_is_refused_when_its_source_cannot_serve(store, workdir, tmp_path):
    put_script(store, tmp_path, "boom.py", "raise SystemExit('boom')\n")
    failed = pipeline(store, tmp_path)
    failed["Steps"][0]["Arguments"]["AppSpecification"]["ContainerEntrypoint"] = [
        "python3",
        "/opt/ml/processing/input/code/boom.py",
    ]
    failed["Steps"][0]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] = failed["Steps"][0][
        "Arguments"
    ]["ProcessingInputs"][0]["S3Input"]["S3Uri"].replace("produce.py", "boom.py")
    result = run_pipeline(failed, workdir=workdir, pipeline_name="demo", region=REGION)
    assert result.status == "Failed"
    runs = sorted((workdir / "runs").iterdir())
    source_arn = read_run(result)["execution_arn"]

    def selective(steps, arn=source_arn):
        return {"SourcePipelineExecutionArn": arn, "SelectedSteps": steps}

    cases = [
        (selective([{"StepName": "Consume"}]), "Step 'Produce' is Failed in execution"),
        (selective([{"StepName": "Nope"}]), "Selected step(s) Nope are not in the pipeline"),
        (selective([]), "at least one SelectedSteps entry"),
        (selective([{"StepName": "Consume"}], arn="arn:x/execution/zzz"), "is not in"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            run_pipeline(
                pipeline(store, tmp_path),
                workdir=workdir,
                pipeline_name="demo",
                region=REGION,
                selective_execution=config,
            )
    with pytest.raises(ValueError, match="ran pipeline demo, not other"):
        run_pipeline(
            pipeline(store, tmp_path),
            workdir=workdir,
            pipeline_name="other",
            region=REGION,
            selective_execution=selective([{"StepName": "Consume"}]),
        )
    assert sorted((workdir / "runs").iterdir()) == runs  # nothing ran
    # Selecting the failed step as well runs it again (and it fails again, here).
    again = run_pipeline(
        failed,
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        selective_execution=selective([{"StepName": "Produce"}, {"StepName": "Consume"}]),
    )
    assert again.status == "Failed" and "boom" in again.failure_reason
