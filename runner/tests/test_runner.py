"""Unit tests of the local pipeline runner with small synthetic definitions and scripts."""

from __future__ import annotations

import _thread
import io
import json
import re
import signal
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sagemaker_pipelines_local import (
    CorruptModelPackageError,
    LocalModelRegistry,
    UnsupportedFeatureError,
    resolve_parameters,
    run_pipeline,
)
from sagemaker_pipelines_local.expressions import (
    ExecutionVariables,
    ExpressionError,
    PropertyFileRef,
    Resolver,
    evaluate_conditions,
)
from sagemaker_pipelines_local.store import MissingObjectError

BUCKET = "s3://test-bucket"
REGION = "us-east-1"
EXEC_ID = {"Get": "Execution.PipelineExecutionId"}


# ---------------------------------------------------------------------------- helpers
def make_definition(steps, parameters=()):
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": list(parameters), "Steps": steps}


def param(name, ptype, default):
    return {"Name": name, "Type": ptype, "DefaultValue": default}


def put_script(store, tmp_path, name, source):
    path = tmp_path / "scripts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return store.put_file(path, f"{BUCKET}/code/{name}")


def s3_input(name, uri, local_path):
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def s3_output(name, uri, local_path):
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def run_output(name):
    """An output URI scoped to the execution, as the real pipeline builds them."""
    return {"Std:Join": {"On": "/", "Values": [BUCKET, "runs", EXEC_ID, name]}}


def processing_step(
    name, script, *, inputs=(), outputs=(), arguments=(), depends_on=None, property_files=None
):
    code_uri = f"{BUCKET}/code/{script}"
    step = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                }
            },
            "AppSpecification": {
                "ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
                "ContainerArguments": list(arguments),
            },
            "RoleArn": "arn:aws:iam::123456789012:role/test",
            "ProcessingInputs": [
                *inputs,
                s3_input("code", code_uri, "/opt/ml/processing/input/code"),
            ],
            "ProcessingOutputConfig": {"Outputs": list(outputs)},
        },
    }
    if depends_on:
        step["DependsOn"] = list(depends_on)
    if property_files:
        step["PropertyFiles"] = property_files
    return step


def output_uri(step_name, output_name):
    return {
        "Get": f"Steps.{step_name}.ProcessingOutputConfig.Outputs['{output_name}'].S3Output.S3Uri"
    }


def read_run(result):
    return json.loads((result.run_dir / "run.json").read_text())


EVALUATE_SCRIPT = """
    import argparse, json, pathlib
    p = argparse.ArgumentParser()
    p.add_argument("--input-dir"); p.add_argument("--output-dir"); p.add_argument("--accuracy")
    a = p.parse_args()
    rows = (pathlib.Path(a.input_dir) / "data.csv").read_text().splitlines()
    out = pathlib.Path(a.output_dir)
    (out / "evaluation").mkdir(parents=True, exist_ok=True)
    (out / "copy").mkdir(parents=True, exist_ok=True)
    (out / "copy" / "rows.txt").write_text(str(len(rows)))
    report = {"multiclass_classification_metrics": {
        "accuracy": {"value": float(a.accuracy), "standard_deviation": "NaN"},
        "weighted_f1": {"value": 0.5, "standard_deviation": "NaN"},
        "confusion_matrix": {"setosa": {"setosa": 3, "virginica": 1},
                             "virginica": {"setosa": 0, "virginica": 4}}}}
    (out / "evaluation" / "evaluation.json").write_text(json.dumps(report))
    print("evaluated", len(rows), "rows")
"""

CONSUME_SCRIPT = """
    import argparse, pathlib
    p = argparse.ArgumentParser()
    p.add_argument("--input-dir"); p.add_argument("--output-dir")
    a = p.parse_args()
    n = (pathlib.Path(a.input_dir) / "rows.txt").read_text()
    pathlib.Path(a.output_dir).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(a.output_dir) / "seen.txt").write_text("rows=" + n)
"""


def gated_pipeline(store, tmp_path):
    """Evaluate -> Gate(accuracy >= Threshold) -> [Consume] / [Stop (Fail)]."""
    store.put_bytes(b"a,b\n1,2\n3,4\n", f"{BUCKET}/data/data.csv")
    put_script(store, tmp_path, "evaluate.py", EVALUATE_SCRIPT)
    put_script(store, tmp_path, "consume.py", CONSUME_SCRIPT)
    accuracy = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
            "Path": "multiclass_classification_metrics.accuracy.value",
        }
    }
    evaluate = processing_step(
        "Evaluate",
        "evaluate.py",
        inputs=[s3_input("data", {"Get": "Parameters.InputUri"}, "/opt/ml/processing/input/data")],
        outputs=[
            s3_output("evaluation", run_output("evaluation"), "/opt/ml/processing/out/evaluation"),
            s3_output("copy", run_output("copy"), "/opt/ml/processing/out/copy"),
        ],
        arguments=[
            "--input-dir",
            "/opt/ml/processing/input/data",
            "--output-dir",
            "/opt/ml/processing/out",
            "--accuracy",
            {"Get": "Parameters.Accuracy"},
        ],
        property_files=[
            {
                "PropertyFileName": "EvaluationReport",
                "OutputName": "evaluation",
                "FilePath": "evaluation.json",
            }
        ],
    )
    consume = processing_step(
        "Consume",
        "consume.py",
        inputs=[s3_input("rows", output_uri("Evaluate", "copy"), "/opt/ml/processing/rows")],
        outputs=[s3_output("seen", run_output("seen"), "/opt/ml/processing/seen")],
        arguments=[
            "--input-dir",
            "/opt/ml/processing/rows",
            "--output-dir",
            "/opt/ml/processing/seen",
        ],
    )
    stop = {
        "Name": "Stop",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": {
                "Std:Join": {
                    "On": " ",
                    "Values": ["accuracy", accuracy, "is below", {"Get": "Parameters.Threshold"}],
                }
            }
        },
    }
    gate = {
        "Name": "Gate",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "GreaterThanOrEqualTo",
                    "LeftValue": accuracy,
                    "RightValue": {"Get": "Parameters.Threshold"},
                }
            ],
            "IfSteps": [consume],
            "ElseSteps": [stop],
        },
    }
    return make_definition(
        [evaluate, gate],
        [
            param("InputUri", "String", f"{BUCKET}/data/data.csv"),
            param("Accuracy", "String", "0.9"),
            param("Threshold", "Float", 0.5),
            param("Retries", "Integer", 1),
            param("Verbose", "Boolean", False),
        ],
    )


# ---------------------------------------------------------------------------- store
def test_store_maps_uris_and_round_trips(store, workdir):
    uri = f"{BUCKET}/a/b.txt"
    assert store.uri_to_path(uri) == workdir / "s3" / "test-bucket" / "a" / "b.txt"
    store.put_bytes(b"hello", uri)
    assert store.read_bytes(uri) == b"hello"
    assert store.exists(uri)
    assert store.path_to_uri(store.uri_to_path(uri)) == uri
    src = store.uri_to_path(uri)
    assert store.put_file(src, f"{BUCKET}/copy.txt") == f"{BUCKET}/copy.txt"
    assert store.read_bytes(f"{BUCKET}/copy.txt") == b"hello"
    with pytest.raises(TypeError, match="local file first"):
        store.put_file(f"{BUCKET}/copy.txt", src)
    with pytest.raises(MissingObjectError, match="s3://test-bucket/a/missing.txt"):
        store.read_bytes(f"{BUCKET}/a/missing.txt")
    with pytest.raises(ValueError):
        store.uri_to_path("https://example.com/x")


def test_store_s3_prefix_download_semantics(store, tmp_path):
    for key in (
        "data/iris.csv",
        "data/iris_extra/x.csv",
        "out/train/train.csv",
        "out/train/sub/a.csv",
        "out/training/other.csv",
    ):
        store.put_bytes(key.encode(), f"{BUCKET}/{key}")

    # A prefix naming one object gives that file under dest.
    got = store.download(f"{BUCKET}/data/iris.csv", tmp_path / "d1")
    assert [p.relative_to(tmp_path / "d1").as_posix() for p in got] == ["iris.csv"]
    # A "folder" prefix gives keys relative to it.
    got = store.download(f"{BUCKET}/out/train/", tmp_path / "d2")
    assert sorted(p.relative_to(tmp_path / "d2").as_posix() for p in got) == [
        "sub/a.csv",
        "train.csv",
    ]
    # Without the slash S3 selects every key that starts with the prefix.
    got = store.download(f"{BUCKET}/out/train", tmp_path / "d3")
    assert sorted(p.relative_to(tmp_path / "d3").as_posix() for p in got) == [
        "sub/a.csv",
        "train.csv",
        "training/other.csv",
    ]
    assert (tmp_path / "d3" / "train.csv").read_text() == "out/train/train.csv"
    assert store.list(f"{BUCKET}/data/iris") == [
        f"{BUCKET}/data/iris.csv",
        f"{BUCKET}/data/iris_extra/x.csv",
    ]
    with pytest.raises(MissingObjectError, match="s3://test-bucket/nothing/here"):
        store.download(f"{BUCKET}/nothing/here", tmp_path / "d4")


def test_store_upload_dir(store, tmp_path):
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "nested" / "b.txt").write_text("b")
    uris = store.upload_dir(src, f"{BUCKET}/up/")
    assert uris == [f"{BUCKET}/up/a.txt", f"{BUCKET}/up/nested/b.txt"]
    assert store.read_bytes(f"{BUCKET}/up/nested/b.txt") == b"b"


# ---------------------------------------------------------------------------- expressions
def _resolver(**kwargs):
    execution = ExecutionVariables("demo", "abc123def456", "arn:aws:sagemaker:x")
    return Resolver(parameters=kwargs.pop("parameters", {}), execution=execution, **kwargs)


def test_expressions_resolve_properties_and_join():
    props = {
        "Pre": {
            "ProcessingOutputConfig": {
                "Outputs": [
                    {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                    {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/test"}},
                ]
            }
        },
        "Train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/model.tar.gz"}},
    }
    r = _resolver(parameters={"N": 3, "Flag": True}, step_properties=props)
    value = r.resolve(
        {
            "a": {"Get": "Steps.Pre.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"},
            "b": [{"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}],
            "c": {
                "Std:Join": {
                    "On": "/",
                    "Values": [
                        "s3://b",
                        {"Get": "Execution.PipelineExecutionId"},
                        {"Get": "Parameters.N"},
                    ],
                }
            },
            "d": {"Get": "Parameters.Flag"},
        }
    )
    assert value == {
        "a": "s3://b/test",
        "b": ["s3://b/model.tar.gz"],
        "c": "s3://b/abc123def456/3",
        "d": True,
    }
    with pytest.raises(ExpressionError, match="Outputs"):
        r.resolve({"Get": "Steps.Pre.ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri"})
    with pytest.raises(ExpressionError, match="undefined pipeline parameter"):
        r.resolve({"Get": "Parameters.Missing"})


def test_json_get_missing_path_names_path_and_file():
    pf = PropertyFileRef("Evaluate", "Report", "s3://b/eval/evaluation.json", {"a": {"b": [1, 2]}})
    r = _resolver(property_files={("Evaluate", "Report"): pf}, step_properties={"Evaluate": {}})
    ref = {"Get": "Steps.Evaluate.PropertyFiles.Report"}
    assert r.resolve({"Std:JsonGet": {"PropertyFile": ref, "Path": "a.b[1]"}}) == 2
    with pytest.raises(ExpressionError) as err:
        r.resolve({"Std:JsonGet": {"PropertyFile": ref, "Path": "a.c.value"}})
    assert "a.c.value" in str(err.value)
    assert "s3://b/eval/evaluation.json" in str(err.value)


def test_conditions():
    assert evaluate_conditions([{"Type": "GreaterThan", "LeftValue": "10", "RightValue": 9}])
    assert evaluate_conditions([{"Type": "LessThanOrEqualTo", "LeftValue": 2, "RightValue": 2.0}])
    assert evaluate_conditions([{"Type": "Equals", "LeftValue": 1, "RightValue": 1.0}])
    assert evaluate_conditions([{"Type": "In", "QueryValue": "b", "Values": ["a", "b"]}])
    assert evaluate_conditions(
        [{"Type": "Not", "Expression": {"Type": "Equals", "LeftValue": "x", "RightValue": "y"}}]
    )
    assert evaluate_conditions(
        [
            {
                "Type": "Or",
                "Conditions": [
                    {"Type": "LessThan", "LeftValue": 5, "RightValue": 1},
                    {"Type": "GreaterThanOrEqualTo", "LeftValue": 0.91, "RightValue": 0.9},
                ],
            }
        ]
    )
    assert not evaluate_conditions(
        [
            {"Type": "Equals", "LeftValue": 1, "RightValue": 1},
            {"Type": "GreaterThan", "LeftValue": 1, "RightValue": 2},
        ]
    )


# ---------------------------------------------------------------------------- pipelines
def test_processing_property_file_condition_if_branch(store, workdir, tmp_path):
    events = []
    result = run_pipeline(
        gated_pipeline(store, tmp_path),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        progress=events.append,
    )
    assert result.status == "Succeeded", result.failure_reason
    assert re.fullmatch(r"[a-z0-9]{12}", result.execution_id)
    assert result.step("Evaluate")["status"] == "Succeeded"
    assert result.step("Gate")["properties"]["Outcome"] == "True"
    assert result.step("Consume")["status"] == "Succeeded"
    assert result.step("Stop")["status"] == "NotRun"
    # Outputs went to execution-scoped URIs and the dependant read them.
    seen_uri = f"{BUCKET}/runs/{result.execution_id}/seen/seen.txt"
    assert store.read_bytes(seen_uri) == b"rows=3"
    evaluate = result.step("Evaluate")
    uris = {o["name"]: o["s3_uri"] for o in evaluate["outputs"]}
    assert uris["evaluation"] == f"{BUCKET}/runs/{result.execution_id}/evaluation"
    assert evaluate["properties"]["ProcessingJobStatus"] == "Completed"
    assert evaluate["property_files"]["EvaluationReport"]["value"][
        "multiclass_classification_metrics"
    ]["accuracy"]["value"] == pytest.approx(0.9)
    assert "evaluated 3 rows" in Path(evaluate["logs"]["stdout"]).read_text()
    # Progress events in SageMaker's words, Executing before the final status.
    by_step = {}
    for event in events:
        by_step.setdefault(event.step_name, []).append(event.status)
    assert by_step["Evaluate"] == ["Executing", "Succeeded"]
    assert by_step["Consume"] == ["Executing", "Succeeded"]
    assert "Stop" not in by_step


def test_else_branch_fail_step_fails_execution_with_message(store, workdir, tmp_path):
    result = run_pipeline(
        gated_pipeline(store, tmp_path),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        parameters={"Threshold": "0.95"},
    )
    assert result.status == "Failed"
    assert result.failure_reason == "accuracy 0.9 is below 0.95"
    assert result.step("Gate")["properties"]["Outcome"] == "False"
    assert result.step("Stop")["status"] == "Failed"
    assert result.step("Stop")["failure_reason"] == "accuracy 0.9 is below 0.95"
    assert result.step("Consume")["status"] == "NotRun"
    record = read_run(result)
    assert record["status"] == "Failed"
    assert [n["name"] for n in record["not_run"]] == ["Consume"]
    assert "branch not taken" in record["not_run"][0]["reason"]


def test_parameter_values_are_read_from_the_definition_text():
    definition = json.dumps(
        make_definition(
            [],
            [
                param("InputDataUri", "String", f"{BUCKET}/demo/input/sample.csv"),
                param("Retries", "Integer", "3"),
            ],
        )
    )
    assert resolve_parameters(definition) == {
        "InputDataUri": f"{BUCKET}/demo/input/sample.csv",
        "Retries": 3,
    }
    assert resolve_parameters(definition, {"Retries": "5"})["Retries"] == 5
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_parameters("{")


def test_parameter_overrides_are_converted_by_type(store, workdir, tmp_path):
    result = run_pipeline(
        gated_pipeline(store, tmp_path),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        parameters={"Threshold": "0.25", "Retries": "3", "Verbose": "true", "Accuracy": "0.3"},
    )
    assert result.status == "Succeeded", result.failure_reason
    assert result.parameters["Threshold"] == 0.25
    assert result.parameters["Retries"] == 3
    assert result.parameters["Verbose"] is True
    assert result.parameters["Accuracy"] == "0.3"
    assert read_run(result)["parameters"]["Retries"] == 3


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"Treshold": "0.3"}, ["Treshold", "Threshold (Float)", "InputUri (String)"]),
        ({"Retries": "many"}, ["Retries", "Integer", "many"]),
        ({"Threshold": "high"}, ["Threshold", "Float"]),
        ({"Verbose": "maybe"}, ["Verbose", "Boolean"]),
    ],
)
def test_bad_parameters_refused_before_running(store, workdir, tmp_path, overrides, expected):
    with pytest.raises(ValueError) as err:
        run_pipeline(
            gated_pipeline(store, tmp_path),
            workdir=workdir,
            pipeline_name="demo",
            region=REGION,
            parameters=overrides,
        )
    for text in expected:
        assert text in str(err.value)
    assert not (workdir / "runs").exists()


def test_failing_script_fails_step_and_skips_dependants(store, workdir, tmp_path):
    put_script(
        store,
        tmp_path,
        "boom.py",
        """
        import sys
        for i in range(30):
            print("noise line", i, file=sys.stderr)
        print("ValueError: the target column is missing", file=sys.stderr)
        sys.exit(3)
        """,
    )
    put_script(store, tmp_path, "consume.py", CONSUME_SCRIPT)
    steps = [
        processing_step(
            "Boom", "boom.py", outputs=[s3_output("out", run_output("out"), "/opt/ml/processing/o")]
        ),
        processing_step(
            "After",
            "consume.py",
            inputs=[s3_input("rows", output_uri("Boom", "out"), "/opt/ml/processing/rows")],
        ),
        processing_step("Later", "consume.py", depends_on=["After"]),
    ]
    result = run_pipeline(
        make_definition(steps), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert result.status == "Failed"
    boom = result.step("Boom")
    assert boom["status"] == "Failed"
    assert "exited with code 3" in boom["failure_reason"]
    assert "the target column is missing" in boom["failure_reason"]
    assert "noise line 5" not in boom["failure_reason"]  # only the tail
    assert "Boom" in result.failure_reason
    assert result.step("After")["status"] == "NotRun"
    assert result.step("Later")["status"] == "NotRun"
    assert "dependency 'Boom' Failed" in result.step("After")["not_run_reason"]
    # The failed step's work dir is kept for debugging.
    assert (result.run_dir / "steps" / "Boom" / "work").is_dir()
    record = read_run(result)
    assert {n["name"] for n in record["not_run"]} == {"After", "Later"}
    assert record["status"] == "Failed"


def test_unsupported_step_type_refused_before_anything_runs(store, workdir, tmp_path):
    put_script(
        store,
        tmp_path,
        "marker.py",
        f"""
        import pathlib
        pathlib.Path({str(tmp_path / "ran.txt")!r}).write_text("ran")
        """,
    )
    steps = [
        processing_step("First", "marker.py"),
        {"Name": "Tune", "Type": "Tuning", "Arguments": {}, "DependsOn": ["First"]},
    ]
    with pytest.raises(UnsupportedFeatureError) as err:
        run_pipeline(make_definition(steps), workdir=workdir, pipeline_name="demo", region=REGION)
    message = str(err.value)
    assert "Tune" in message and "Tuning" in message and "local runner" in message
    assert not (tmp_path / "ran.txt").exists()
    assert not (workdir / "runs").exists()


def test_unsupported_settings_refused_before_running(store, workdir, tmp_path):
    put_script(store, tmp_path, "consume.py", CONSUME_SCRIPT)
    step = processing_step("Pre", "consume.py")
    step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = {
        "Get": "Parameters.Count"
    }
    with pytest.raises(UnsupportedFeatureError, match="InstanceCount"):
        run_pipeline(
            make_definition([step], [param("Count", "Integer", 2)]),
            workdir=workdir,
            pipeline_name="demo",
            region=REGION,
        )
    step = processing_step("Pre", "consume.py")
    step["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3InputMode"] = "Pipe"
    with pytest.raises(UnsupportedFeatureError, match="Pipe"):
        run_pipeline(make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION)
    assert not (workdir / "runs").exists()


def test_max_runtime_is_honoured(store, workdir, tmp_path):
    marker = tmp_path / "slept-to-the-end"
    script = f"import pathlib, time\ntime.sleep(30)\npathlib.Path({str(marker)!r}).touch()\n"
    put_script(store, tmp_path, "sleep.py", script)
    step = processing_step("Slow", "sleep.py")
    step["Arguments"]["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}
    result = run_pipeline(
        make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert not marker.exists(), "the step outlived MaxRuntimeInSeconds"
    assert result.status == "Failed"
    assert "MaxRuntimeInSeconds" in result.step("Slow")["failure_reason"]


@pytest.fixture
def ctrl_c_reaches_python():
    """SIGINT handled as in a terminal's foreground job.

    A shell starts a background job (``make test &``, some CI agents) with SIGINT ignored;
    then ``_thread.interrupt_main()`` does nothing and the step would sleep to its end: the
    cause of this test's rare "the step's process was not stopped".
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_the_execution(store, workdir, tmp_path, ctrl_c_reaches_python):
    marker = tmp_path / "slept-to-the-end"
    script = f"import pathlib, time\ntime.sleep(600)\npathlib.Path({str(marker)!r}).touch()\n"
    put_script(store, tmp_path, "sleep.py", script)
    put_script(store, tmp_path, "consume.py", CONSUME_SCRIPT)
    steps = [
        processing_step("Slow", "sleep.py"),
        processing_step("Next", "consume.py", depends_on=["Slow"]),
    ]
    watchers: list[threading.Thread] = []

    def ctrl_c_once_the_process_runs(step_dir: Path) -> None:
        # run_process writes command.json, then starts the process: wait for it to be up.
        deadline = time.monotonic() + 120
        while not (step_dir / "stdout.log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()

    def on_event(event) -> None:
        if event.name == "Slow" and event.status == "Executing" and not watchers:
            step_dir = workdir / "runs" / "ctrl-c" / "steps" / "Slow"
            watchers.append(threading.Thread(target=ctrl_c_once_the_process_runs, args=(step_dir,)))
            watchers[0].start()

    result = run_pipeline(
        make_definition(steps),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        execution_id="ctrl-c",
        progress=on_event,
    )
    assert watchers, "the slow step never started"
    watchers[0].join()
    assert not marker.exists(), "the step's process was not stopped"
    assert result.status == "Stopped"
    assert result.failure_reason.endswith("the runner received SIGINT (Ctrl-C).")
    assert result.step("Slow")["status"] == "Stopped"
    assert result.step("Next")["status"] == "NotRun"
    assert read_run(result)["status"] == "Stopped"


def test_no_file_the_runner_writes_records_the_hosts_credentials(
    store, workdir, tmp_path, monkeypatch
):
    secrets = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLERUNNERKEY",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/runner-secret-access-key",
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLE-runner-session-token",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    # Runs that succeed (a condition, a registration) and one whose step fails with its stderr.
    succeeded = run_pipeline(
        gated_pipeline(store, tmp_path), workdir=workdir, pipeline_name="demo", region=REGION
    )
    registered = run_pipeline(
        register_pipeline(store), workdir=workdir, pipeline_name="demo", region=REGION
    )
    put_script(store, tmp_path, "fail.py", "import sys\nprint('bad input', file=sys.stderr)\n"
               "sys.exit(4)\n")  # fmt: skip
    failed = run_pipeline(
        make_definition([processing_step("Fails", "fail.py")]),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
    )
    assert (succeeded.status, registered.status, failed.status) == (
        "Succeeded",
        "Succeeded",
        "Failed",
    )
    assert (workdir / "registry").is_dir()
    written = [path for path in workdir.rglob("*") if path.is_file()]
    assert any(path.name == "command.json" for path in written)
    assert any(path.name == "report.html" for path in written)
    for path in written:
        content = path.read_bytes()
        for key, value in secrets.items():
            assert value.encode() not in content, f"{key}'s value is in {path}"


def test_relative_workdir(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_pipeline(
        gated_pipeline(store, tmp_path), workdir=Path(".local"), pipeline_name="demo", region=REGION
    )
    assert result.status == "Succeeded", result.failure_reason
    assert result.run_dir.is_absolute()


def test_independent_steps_run_in_parallel(store, workdir, tmp_path):
    put_script(store, tmp_path, "nap.py", "import time\ntime.sleep(0.6)\n")
    steps = [processing_step("A", "nap.py"), processing_step("B", "nap.py")]
    result = run_pipeline(
        make_definition(steps), workdir=workdir, pipeline_name="demo", region=REGION, max_workers=2
    )
    assert result.status == "Succeeded"
    a, b = result.step("A"), result.step("B")
    assert a["start_time"] < b["end_time"] and b["start_time"] < a["end_time"]


def test_run_record_and_report(store, workdir, tmp_path):
    result = run_pipeline(
        gated_pipeline(store, tmp_path),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        execution_id="fixedid00001",
    )
    assert result.run_dir == workdir / "runs" / "fixedid00001"
    record = read_run(result)
    for key in (
        "execution_id",
        "pipeline_name",
        "status",
        "start_time",
        "end_time",
        "parameters",
        "failure_reason",
        "steps",
        "not_run",
        "ignored",
    ):
        assert key in record
    assert record["execution_id"] == "fixedid00001"
    assert record["pipeline_name"] == "demo"
    assert record["status"] == "Succeeded"
    assert record["failure_reason"] is None
    assert record["start_time"].endswith("Z") and "T" in record["start_time"]
    assert record["parameters"]["Threshold"] == 0.5
    names = [s["name"] for s in record["steps"]]
    assert names == ["Evaluate", "Gate", "Consume", "Stop"]
    step = record["steps"][0]
    for key in (
        "name",
        "type",
        "status",
        "start_time",
        "end_time",
        "duration_seconds",
        "outputs",
        "properties",
        "failure_reason",
        "logs",
    ):
        assert key in step
    assert step["outputs"][0]["local_path"].startswith(str(workdir / "s3"))
    assert record["not_run"] == [
        {"name": "Stop", "type": "Fail", "reason": record["steps"][3]["not_run_reason"]}
    ]
    ignored = {(i["step"], i["setting"]) for i in record["ignored"]}
    assert ("Evaluate", "RoleArn") in ignored
    assert ("Evaluate", "AppSpecification.ImageUri") in ignored

    html = (result.run_dir / "report.html").read_text()
    for name in names:
        assert name in html
    assert "<svg" in html and "accuracy" in html and "0.9" in html
    assert "confusion matrix" in html and "virginica" in html
    assert "<script" not in html


def run_evaluation(store, tmp_path, workdir, writes):
    """Run one Evaluate step that ``writes`` files into ``out``, its output "evaluation",
    where the property file Report is evaluation.json."""
    script = (
        "import json, pathlib\n"
        'out = pathlib.Path("opt/ml/processing/evaluation")\n'
        "out.mkdir(parents=True, exist_ok=True)\n"
    ) + textwrap.dedent(writes)
    put_script(store, tmp_path, "evaluate_report.py", script)
    step = processing_step(
        "Evaluate",
        "evaluate_report.py",
        outputs=[
            s3_output("evaluation", run_output("evaluation"), "/opt/ml/processing/evaluation")
        ],
        property_files=[
            {
                "PropertyFileName": "Report",
                "OutputName": "evaluation",
                "FilePath": "evaluation.json",
            }
        ],
    )
    return run_pipeline(
        make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION
    )


def test_report_residual_plot_for_regression(store, workdir, tmp_path):
    result = run_evaluation(
        store,
        tmp_path,
        workdir,
        """
        (out / "evaluation.json").write_text(json.dumps({"regression_metrics": {
            "mse": {"value": 0.25, "standard_deviation": "NaN"},
            "r2": {"value": 0.8, "standard_deviation": "NaN"}}}))
        (out / "predictions.csv").write_text("actual,predicted\\n1,1.5\\n2,1.8\\n3,3.3\\n")
        """,
    )
    assert result.status == "Succeeded", result.failure_reason
    html = (result.run_dir / "report.html").read_text()
    assert "regression_metrics" in html and "r2" in html
    assert "residual" in html and html.count("<circle") == 3


def test_report_shows_the_new_model_against_the_champion(store, workdir, tmp_path):
    result = run_evaluation(
        store,
        tmp_path,
        workdir,
        """
        duel = {"metric": "rmse", "challenger": 3.5, "champion": 3.25, "champion_version": 4,
                "margin": 0.0, "lower_is_better": True, "required": 3.25, "passed": False,
                "summary": "the approved version 4 scores rmse 3.2500 on the same 9 rows"}
        (out / "evaluation.json").write_text(json.dumps({"regression_metrics": {
            "rmse": {"value": 3.5, "standard_deviation": "NaN"}}, "champion_challenger": duel}))
        """,
    )
    assert result.status == "Succeeded", result.failure_reason
    html = (result.run_dir / "report.html").read_text()
    assert "champion and challenger" in html
    assert '<span class="badge Failed">worse than the champion</span>' in html
    assert "<td>champion (version 4)</td><td>3.25</td>" in html
    assert "<td>required</td><td>at most 3.25</td>" in html


def test_property_file_with_invalid_json_fails_clearly(store, workdir, tmp_path):
    result = run_evaluation(
        store, tmp_path, workdir, '(out / "evaluation.json").write_text("{not")'
    )
    assert result.status == "Failed"
    assert "not valid JSON" in result.step("Evaluate")["failure_reason"]
    assert "Report" in result.step("Evaluate")["failure_reason"]


# ---------------------------------------------------------------------------- training
TRAIN_SCRIPT = """
    import json, os, pathlib, sys
    model_dir = pathlib.Path(os.environ["SM_MODEL_DIR"])
    train_dir = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"])
    info = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "train_files": sorted(p.name for p in train_dir.iterdir()),
        "channels": json.loads(os.environ["SM_CHANNELS"]),
        "hps": json.loads(os.environ["SM_HPS"]),
        "hp_n_estimators": os.environ.get("SM_HP_N_ESTIMATORS"),
        "num_gpus": os.environ["SM_NUM_GPUS"],
        "current_host": os.environ["SM_CURRENT_HOST"],
        "training_env": json.loads(os.environ["SM_TRAINING_ENV"])["job_name"],
        "helper_importable": __import__("helper").VALUE,
    }
    (model_dir / "info.json").write_text(json.dumps(info))
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text("# serving code")
"""


def training_step(hyperparameters, channels, name="Train"):
    return {
        "Name": name,
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                "TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
            },
            "HyperParameters": hyperparameters,
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
                for channel, uri in channels.items()
            ],
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "RoleArn": "arn:aws:iam::123456789012:role/test",
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models", "CompressionType": "GZIP"},
        },
    }


def model_members(store, uri):
    with tarfile.open(store.uri_to_path(uri), "r:gz") as tar:
        members = tar.getnames()
        info = json.loads(tar.extractfile("info.json").read())
    return members, info


def test_training_v3_layout(store, workdir, tmp_path):
    store.put_bytes(b"x,y\n1,2\n", f"{BUCKET}/data/train/train.csv")
    store.put_bytes(textwrap.dedent(TRAIN_SCRIPT).encode(), f"{BUCKET}/job/input/code/train.py")
    store.put_bytes(b"VALUE = 42\n", f"{BUCKET}/job/input/code/helper.py")
    source = {
        "source_dir": "scripts",
        "requirements": None,
        "entry_script": "train.py",
        "command": None,
    }
    store.put_bytes(json.dumps(source).encode(), f"{BUCKET}/job/input/sm_drivers/sourcecode.json")
    store.put_bytes(b"{}", f"{BUCKET}/job/input/sm_drivers/distributed.json")
    step = training_step(
        {"n-estimators": {"Get": "Parameters.NEstimators"}, "target-column": "species"},
        {
            "train": f"{BUCKET}/data/train",
            "code": f"{BUCKET}/job/input/code",
            "sm_drivers": f"{BUCKET}/job/input/sm_drivers",
        },
    )
    step["Arguments"]["AlgorithmSpecification"]["ContainerEntrypoint"] = ["/bin/bash"]
    result = run_pipeline(
        make_definition([step], [param("NEstimators", "String", "100")]),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        parameters={"NEstimators": "7"},
    )
    assert result.status == "Succeeded", result.failure_reason
    props = result.step("Train")["properties"]
    job_name = props["TrainingJobName"]
    model_uri = props["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"{BUCKET}/models/{job_name}/output/model.tar.gz"
    assert props["TrainingJobStatus"] == "Completed"
    members, info = model_members(store, model_uri)
    assert sorted(members) == ["code", "code/inference.py", "info.json"]
    assert info["argv"] == ["--n-estimators", "7", "--target-column", "species"]
    assert info["train_files"] == ["train.csv"]
    assert info["hps"] == {"n-estimators": 7, "target-column": "species"}
    assert info["hp_n_estimators"] == "7"
    assert info["num_gpus"] == "0" and info["current_host"] == "algo-1"
    assert info["training_env"] == job_name
    assert info["helper_importable"] == 42
    assert info["cwd"].endswith("input/data/code")
    assert info["channels"] == ["train", "code", "sm_drivers"]


def test_training_v3_command_is_refused(store, workdir):
    store.put_bytes(b"x\n", f"{BUCKET}/data/train/train.csv")
    store.put_bytes(b"print(1)\n", f"{BUCKET}/job/input/code/train.py")
    source = {"entry_script": "train.py", "command": "torchrun train.py"}
    store.put_bytes(json.dumps(source).encode(), f"{BUCKET}/job/input/sm_drivers/sourcecode.json")
    step = training_step(
        {},
        {
            "train": f"{BUCKET}/data/train",
            "code": f"{BUCKET}/job/input/code",
            "sm_drivers": f"{BUCKET}/job/input/sm_drivers",
        },
    )
    result = run_pipeline(
        make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert result.status == "Failed"
    reason = result.step("Train")["failure_reason"]
    assert "SourceCode.command" in reason and "torchrun" in reason


def targz(files: dict[str, str]) -> bytes:
    """A .tar.gz, in memory, of ``{name: text}`` (each text dedented)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buf.getvalue()


def put_v2_training_code(store):
    """The training data and SDK v2's sourcedir.tar.gz (train.py and a helper module)."""
    store.put_bytes(b"x,y\n1,2\n", f"{BUCKET}/data/train/train.csv")
    source = targz({"train.py": TRAIN_SCRIPT, "helper.py": "VALUE = 42\n"})
    store.put_bytes(source, f"{BUCKET}/src/sourcedir.tar.gz")


def test_training_v2_layout(store, workdir, tmp_path):
    put_v2_training_code(store)
    step = training_step(
        {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"{BUCKET}/src/sourcedir.tar.gz"',
            "sagemaker_container_log_level": "20",
            "sagemaker_region": '"us-east-1"',
            "target-column": '"species"',
            "n-estimators": "100",
        },
        {"train": f"{BUCKET}/data/train"},
    )
    result = run_pipeline(
        make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert result.status == "Succeeded", result.failure_reason
    members, info = model_members(
        store, result.step("Train")["properties"]["ModelArtifacts"]["S3ModelArtifacts"]
    )
    assert "info.json" in members and not any(m.startswith("./") for m in members)
    assert info["argv"] == ["--n-estimators", "100", "--target-column", "species"]
    assert info["hps"] == {"target-column": "species", "n-estimators": 100}
    assert info["hp_n_estimators"] == "100"
    assert info["channels"] == ["train"]


def test_training_multi_instance_refused(store, workdir):
    step = training_step({}, {"train": f"{BUCKET}/data/train"})
    step["Arguments"]["ResourceConfig"]["InstanceCount"] = 2
    with pytest.raises(UnsupportedFeatureError) as err:
        run_pipeline(make_definition([step]), workdir=workdir, pipeline_name="demo", region=REGION)
    assert "Train" in str(err.value) and "InstanceCount" in str(err.value)


# ---------------------------------------------------------------------------- transform
INFERENCE = """
    import json, os

    def model_fn(model_dir):
        with open(os.path.join(model_dir, "model.json")) as fh:
            return json.load(fh)

    def input_fn(body, content_type):
        assert content_type == "text/csv", content_type
        return [[float(x) for x in line.split(",")] for line in body.splitlines() if line]

    def predict_fn(rows, model):
        with open(os.environ["CALLS_LOG"], "a") as fh:
            fh.write(str(len(rows)) + "\\n")
        if os.environ.get("EXPLODE"):
            raise RuntimeError("the model exploded")
        return [sum(r) * model["factor"] for r in rows]

    def output_fn(predictions, accept):
        if os.environ.get("ONE_LINE"):
            return str(sum(predictions))
        return "\\n".join(str(p) for p in predictions)
"""


def transform_pipeline(store, tmp_path, **transform_args):
    model = targz({"model.json": '{"factor": 2}', "code/inference.py": INFERENCE})
    store.put_bytes(model, f"{BUCKET}/models/job/output/model.tar.gz")
    store.put_bytes(b"1,2\n3,4\n5,6\n7,8\n9,10\n", f"{BUCKET}/batch/batch.csv")
    model = {
        "Name": "CreateModel",
        "Type": "Model",
        "Arguments": {
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/test",
            "PrimaryContainer": {
                "Image": "123.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                },
                "ModelDataUrl": f"{BUCKET}/models/job/output/model.tar.gz",
            },
        },
    }
    environment = {"CALLS_LOG": str(tmp_path / "calls.txt")}
    environment.update(transform_args.pop("Environment", {}))
    transform = {
        "Name": "BatchTransform",
        "Type": "Transform",
        "Arguments": {
            "ModelName": {"Get": "Steps.CreateModel.ModelName"},
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{BUCKET}/batch"}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": run_output("transform"),
                "Accept": "text/csv",
                "AssembleWith": "Line",
            },
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "BatchStrategy": "MultiRecord",
            "Environment": environment,
            **transform_args,
        },
    }
    return make_definition([model, transform])


def calls(tmp_path):
    return [int(x) for x in (tmp_path / "calls.txt").read_text().split()]


def transform_output(store, result):
    uri = result.step("BatchTransform")["properties"]["TransformOutput"]["S3OutputPath"]
    return store.read_bytes(f"{uri}/batch.csv.out").decode()


def test_transform_multi_record(store, workdir, tmp_path):
    result = run_pipeline(
        transform_pipeline(store, tmp_path), workdir=workdir, pipeline_name="demo", region=REGION
    )
    assert result.status == "Succeeded", result.failure_reason
    assert calls(tmp_path) == [5]
    assert transform_output(store, result) == "6.0\n14.0\n22.0\n30.0\n38.0\n"
    model_name = result.step("CreateModel")["properties"]["ModelName"]
    assert (workdir / "models" / f"{model_name}.json").is_file()
    props = result.step("BatchTransform")["properties"]
    assert props["ModelName"] == model_name
    assert props["TransformJobStatus"] == "Completed"
    assert (
        props["TransformOutput"]["S3OutputPath"] == f"{BUCKET}/runs/{result.execution_id}/transform"
    )


def test_transform_multi_record_respects_max_payload(store, workdir, tmp_path):
    # 5 records of 3-4 bytes: a tiny MaxPayloadInMB splits them into mini-batches.
    result = run_pipeline(
        transform_pipeline(store, tmp_path, MaxPayloadInMB=0.000008),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
    )
    assert result.status == "Succeeded", result.failure_reason
    assert sum(calls(tmp_path)) == 5 and len(calls(tmp_path)) > 1
    assert transform_output(store, result).count("\n") == 5


def test_transform_single_record_with_join_source(store, workdir, tmp_path):
    result = run_pipeline(
        transform_pipeline(
            store, tmp_path, BatchStrategy="SingleRecord", DataProcessing={"JoinSource": "Input"}
        ),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
    )
    assert result.status == "Succeeded", result.failure_reason
    assert calls(tmp_path) == [1, 1, 1, 1, 1]
    assert transform_output(store, result).splitlines() == [
        "1,2,6.0",
        "3,4,14.0",
        "5,6,22.0",
        "7,8,30.0",
        "9,10,38.0",
    ]


def test_transform_line_count_mismatch_fails(store, workdir, tmp_path):
    result = run_pipeline(
        transform_pipeline(store, tmp_path, Environment={"ONE_LINE": "1"}),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
    )
    assert result.status == "Failed"
    reason = result.step("BatchTransform")["failure_reason"]
    assert "5 input records" in reason and "1 output lines" in reason


def test_transform_worker_error_fails_with_stderr_tail(store, workdir, tmp_path):
    result = run_pipeline(
        transform_pipeline(store, tmp_path, Environment={"EXPLODE": "1"}),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
    )
    assert result.status == "Failed"
    assert "the model exploded" in result.step("BatchTransform")["failure_reason"]


def test_transform_join_source_needs_csv(store, workdir, tmp_path):
    pipeline = transform_pipeline(store, tmp_path, DataProcessing={"JoinSource": "Input"})
    pipeline["Steps"][1]["Arguments"]["TransformInput"]["ContentType"] = "application/json"
    with pytest.raises(UnsupportedFeatureError, match="JoinSource"):
        run_pipeline(pipeline, workdir=workdir, pipeline_name="demo", region=REGION)
    pipeline = transform_pipeline(store, tmp_path, DataProcessing={"InputFilter": "$[1:]"})
    with pytest.raises(UnsupportedFeatureError, match="InputFilter"):
        run_pipeline(pipeline, workdir=workdir, pipeline_name="demo", region=REGION)


# ---------------------------------------------------------------------------- registry
def register_pipeline(store):
    store.put_bytes(b"model", f"{BUCKET}/models/job/output/model.tar.gz")
    metrics = {"multiclass_classification_metrics": {"accuracy": {"value": 0.93}}}
    store.put_bytes(json.dumps(metrics).encode(), f"{BUCKET}/eval/evaluation.json")
    step = {
        "Name": "RegisterModel",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "demo-group",
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": {
                            "Std:Join": {"On": "/", "Values": [f"{BUCKET}/eval", "evaluation.json"]}
                        },
                    }
                },
                "Bias": {},
                "Explainability": {},
            },
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": "123.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
                        "ModelDataUrl": f"{BUCKET}/models/job/output/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "ModelApprovalStatus": {"Get": "Parameters.ModelApprovalStatus"},
            "CustomerMetadataProperties": {"git": "abc"},
            "SkipModelValidation": "None",
        },
    }
    return make_definition(
        [step], [param("ModelApprovalStatus", "String", "PendingManualApproval")]
    )


def test_registry_versions_increase_across_runs(store, workdir):
    first = run_pipeline(
        register_pipeline(store), workdir=workdir, pipeline_name="demo", region=REGION
    )
    second = run_pipeline(
        register_pipeline(store),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        parameters={"ModelApprovalStatus": "Approved"},
    )
    assert first.status == second.status == "Succeeded"
    assert first.step("RegisterModel")["properties"]["ModelPackageVersion"] == 1
    props = second.step("RegisterModel")["properties"]
    assert props["ModelPackageVersion"] == 2
    assert props["ModelPackageArn"].endswith(":model-package/demo-group/2")
    assert props["ModelApprovalStatus"] == "Approved"

    registry = LocalModelRegistry(workdir)
    assert registry.list_groups() == ["demo-group"]
    packages = registry.list_packages("demo-group")
    assert [p["ModelPackageVersion"] for p in packages] == [1, 2]
    latest = registry.get("demo-group", 2)
    assert latest["ModelApprovalStatus"] == "Approved"
    assert latest["PipelineExecutionId"] == second.execution_id
    assert latest["CustomerMetadataProperties"] == {"git": "abc"}
    stats = latest["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert stats["S3Uri"] == f"{BUCKET}/eval/evaluation.json"
    assert stats["Content"]["multiclass_classification_metrics"]["accuracy"]["value"] == 0.93
    assert packages[0]["ModelApprovalStatus"] == "PendingManualApproval"


def test_the_report_shows_what_a_registered_version_records(store, workdir):
    definition = register_pipeline(store)
    arguments = definition["Steps"][0]["Arguments"]
    arguments["MetadataProperties"] = {"CommitId": "0123abc"}
    arguments["ModelCard"] = {"ModelCardContent": "{}", "ModelCardStatus": "Draft"}
    result = run_pipeline(definition, workdir=workdir, pipeline_name="demo", region=REGION)
    assert result.status == "Succeeded"
    html = (result.run_dir / "report.html").read_text()
    section = html[html.index("<h2>Registered versions</h2>") :]
    assert "version 1 of demo-group" in section
    for shown in ("<td>git</td><td>abc</td>", "MetadataProperties.CommitId</td><td>0123abc"):
        assert shown in section
    assert "ModelCard.ModelCardStatus</td><td>Draft" in section


@pytest.mark.parametrize(
    ("metadata", "refused"),
    [
        ({"Columns": "a,b"}, "Columns = 'a,b'"),  # a comma: SageMaker's pattern has none
        ({"Empty": ""}, "Empty = ''"),
        ({"Long": "x" * 257}, "Long = 'xxx"),
        ({"bad key!": "v"}, "key 'bad key!'"),
        ({f"K{i}": "v" for i in range(51)}, "51 entries"),
    ],
)
def test_customer_metadata_beyond_the_apis_limits_is_refused(store, workdir, metadata, refused):
    definition = register_pipeline(store)
    definition["Steps"][0]["Arguments"]["CustomerMetadataProperties"] = metadata
    with pytest.raises(ValueError, match="CustomerMetadataProperties") as caught:
        run_pipeline(definition, workdir=workdir, pipeline_name="demo", region=REGION)
    assert refused in str(caught.value) and "_.:/=+-@" in str(caught.value)


def test_customer_metadata_from_a_parameter_is_checked_before_the_run(store, workdir):
    definition = register_pipeline(store)
    definition["Parameters"].append(param("Note", "String", "fine"))
    note = {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Note"}]}}
    definition["Steps"][0]["Arguments"]["CustomerMetadataProperties"] = {"Note": note}
    run = {"workdir": workdir, "pipeline_name": "demo", "region": REGION}
    assert run_pipeline(definition, **run).status == "Succeeded"
    with pytest.raises(ValueError, match="Note = 'one, two' is refused"):
        run_pipeline(definition, **run, parameters={"Note": "one, two"})
    assert LocalModelRegistry(workdir).latest("demo-group")["ModelPackageVersion"] == 1


def test_a_corrupt_registry_entry_is_named_and_the_others_still_listed(workdir):
    registry = LocalModelRegistry(workdir)
    for _ in range(3):
        registry.register("demo-group", {"ModelPackageDescription": "a model"}, region=REGION)
    path = workdir / "registry" / "demo-group" / "2.json"
    path.write_text(path.read_text()[:40])  # cut short, as by a full disk or a crash

    assert [p["ModelPackageVersion"] for p in registry.list_packages("demo-group")] == [1, 3]
    [problem] = registry.corrupt_packages("demo-group")
    assert problem.path == path
    message = str(problem)
    assert str(path) in message and "not valid JSON" in message
    assert "delete it to drop the version" in message
    with pytest.raises(CorruptModelPackageError, match=re.escape(str(path))):
        registry.get("demo-group", 2)
    assert registry.latest("demo-group")["ModelPackageVersion"] == 3
    assert registry.list_groups() == ["demo-group"]
    # The number stays taken: a new registration never reuses it.
    assert registry.register("demo-group", {}, region=REGION)["ModelPackageVersion"] == 4


def test_registry_rejects_unknown_approval_status(store, workdir):
    with pytest.raises(ValueError, match="ModelApprovalStatus"):
        run_pipeline(
            register_pipeline(store),
            workdir=workdir,
            pipeline_name="demo",
            region=REGION,
            parameters={"ModelApprovalStatus": "Maybe"},
        )


def test_region_is_the_one_passed_in_not_the_environment(store, workdir, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    result = run_pipeline(
        register_pipeline(store), workdir=workdir, pipeline_name="demo", region="eu-west-1"
    )
    assert result.status == "Succeeded", result.failure_reason
    record = read_run(result)
    assert record["region"] == "eu-west-1"
    assert record["execution_arn"].startswith("arn:aws:sagemaker:eu-west-1:000000000000:")
    arn = result.step("RegisterModel")["properties"]["ModelPackageArn"]
    assert arn == "arn:aws:sagemaker:eu-west-1:000000000000:model-package/demo-group/1"
    package = LocalModelRegistry(workdir).get("demo-group", 1)
    assert package["ModelPackageArn"] == arn


def test_account_id_is_passed_in_once_and_names_every_arn(store, tmp_path, workdir):
    result = run_pipeline(
        gated_pipeline(store, tmp_path),
        workdir=workdir,
        pipeline_name="demo",
        region="eu-west-1",
        account_id="111122223333",
    )
    assert result.status == "Succeeded", result.failure_reason
    record = read_run(result)
    arns = [record["execution_arn"]] + [
        value
        for step in record["steps"]
        for key, value in step["properties"].items()
        if key.endswith("Arn") and key != "RoleArn"
    ]
    registered = LocalModelRegistry(workdir).register(
        "demo-group", {}, region="eu-west-1", account_id="111122223333"
    )
    arns.append(registered["ModelPackageArn"])
    assert len(arns) > 3
    assert all(arn.startswith("arn:aws:sagemaker:eu-west-1:111122223333:") for arn in arns), arns


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"region": ""}, "region must be an AWS region name"),
        ({"region": "Europe"}, "region must be an AWS region name"),
        ({"region": "eu_west_1"}, "region must be an AWS region name"),
        ({"region": "eu-west-1", "account_id": "my-account"}, "account_id must be a 12-digit"),
    ],
)
def test_region_or_account_that_is_not_one_is_refused(store, workdir, where, message):
    with pytest.raises(ValueError, match=message):
        run_pipeline(register_pipeline(store), workdir=workdir, pipeline_name="demo", **where)
    assert not (workdir / "runs").exists()
