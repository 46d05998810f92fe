"""A step gets what the container gives it: environment, driver transformations, libraries."""

from __future__ import annotations

import json
import tarfile
import textwrap
from pathlib import Path

from sagemaker_pipelines_local import StepEnvironments, run_pipeline
from sagemaker_pipelines_local.image import IMAGES
from test_runner import (
    BUCKET,
    REGION,
    make_definition,
    processing_step,
    put_script,
    run_output,
    s3_input,
    s3_output,
    targz,
    training_step,
)

SKLEARN_19 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
SKLEARN_12 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def script_step(store, tmp_path, name, source, image="123.dkr.ecr.us-east-1.amazonaws.com/x:1"):
    """A Processing step running ``source`` with its output folder as first argument."""
    put_script(store, tmp_path, f"{name}.py", source)
    step = processing_step(
        name,
        f"{name}.py",
        outputs=[s3_output("out", run_output(name), "/opt/ml/processing/out")],
        arguments=["/opt/ml/processing/out"],
    )
    step["Arguments"]["AppSpecification"]["ImageUri"] = image
    return step


def output_json(result, step, file):
    [out] = result.step(step)["outputs"]
    return json.loads((Path(out["local_path"]) / file).read_text())


# ---------------------------------------------------------------------------- environment
ENV_SCRIPT = """
    import json, os, sys
    out = sys.argv[1]
    with open(os.path.join(out, "env.json"), "w") as fh:
        json.dump(dict(os.environ), fh)
"""

HOST_ONLY = {
    "AWS_ACCESS_KEY_ID": "AKIAHOSTONLY",
    "AWS_SECRET_ACCESS_KEY": "host-secret",
    "AWS_SESSION_TOKEN": "host-token",
    "AWS_PROFILE": "host-profile",
    "HOST_ONLY_VAR": "from the host",
}


def test_step_sees_the_container_environment_and_nothing_of_the_host(
    store, workdir, tmp_path, monkeypatch
):
    for key, value in HOST_ONLY.items():
        monkeypatch.setenv(key, value)
    step = script_step(store, tmp_path, "Env", ENV_SCRIPT)
    step["Arguments"]["Environment"] = {"DECLARED": "by the step"}
    result = run(workdir, step)
    assert result.status == "Succeeded", result.failure_reason
    env = output_json(result, "Env", "env.json")
    # No value of the host's reaches the step; the credentials it has are the runner's
    # placeholders, good only for the runner's local endpoints (SageMaker Runtime).
    assert not {"AWS_SESSION_TOKEN", "AWS_PROFILE", "HOST_ONLY_VAR"} & set(env), sorted(env)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("local", "local")
    assert env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"].startswith("http://127.0.0.1:")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
    assert env["DECLARED"] == "by the step"
    assert "/usr/bin" in env["PATH"].split(":")
    assert env["LANG"] == "C.UTF-8"
    # A HOME of the step's own: the host's ~/.aws is not where boto3 would look.
    assert env["HOME"] != str(Path.home()) and "steps/Env" in env["HOME"]
    assert not any("host" in value for value in env.values())


# ---------------------------------------------------------------------------- SDK v3 driver
V3_SCRIPT = """
    import json, os, pathlib, sys
    out = pathlib.Path(os.environ["SM_MODEL_DIR"]) / "seen.json"
    out.write_text(json.dumps({
        "argv": sys.argv[1:],
        "hp_rate": os.environ.get("SM_HP_LEARNING_RATE"),
        "hps": json.loads(os.environ["SM_HPS"]),
    }))
"""


def run(workdir, *steps, **options):
    return run_pipeline(
        make_definition(list(steps)),
        workdir=workdir,
        pipeline_name="demo",
        region=REGION,
        **options,
    )


def train(store, workdir, step):
    """Run one training step; return the result and what the script saw (seen.json)."""
    result = run(workdir, step)
    if result.status != "Succeeded":
        return result, None
    uri = result.step("Train")["properties"]["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(store.uri_to_path(uri), "r:gz") as tar:
        return result, json.loads(tar.extractfile("seen.json").read())


def v3_training(store, hyperparameters):
    store.put_bytes(b"x\n1\n", f"{BUCKET}/data/train/train.csv")
    store.put_bytes(textwrap.dedent(V3_SCRIPT).encode(), f"{BUCKET}/job/input/code/train.py")
    source = {"entry_script": "train.py", "command": None, "requirements": None}
    store.put_bytes(json.dumps(source).encode(), f"{BUCKET}/job/input/sm_drivers/sourcecode.json")
    return training_step(
        hyperparameters,
        {
            "train": f"{BUCKET}/data/train",
            "code": f"{BUCKET}/job/input/code",
            "sm_drivers": f"{BUCKET}/job/input/sm_drivers",
        },
    )


def test_v3_hyperparameters_make_the_json_round_trip(store, workdir):
    step = v3_training(store, {"learning-rate": "2.50", "target": "species"})
    result, seen = train(store, workdir, step)
    assert result.status == "Succeeded", result.failure_reason
    # "2.50" is JSON for the number 2.5: the driver passes it on as 2.5, as on SageMaker.
    assert seen["argv"] == ["--learning-rate", "2.5", "--target", "species"]
    assert seen["hp_rate"] == "2.5"
    assert seen["hps"] == {"learning-rate": 2.5, "target": "species"}


def test_v3_single_quote_in_a_hyperparameter_fails_as_on_sagemaker(store, workdir):
    step = v3_training(store, {"target-column": "customer's churn"})
    result, _ = train(store, workdir, step)
    assert result.status == "Failed"
    reason = result.step("Train")["failure_reason"]
    assert "exit code 2" in reason
    assert "SM_HP_TARGET_COLUMN" in reason and "single quote" in reason
    assert "sm_training.env" in reason


def test_v2_toolkit_decodes_hyperparameters_but_needs_no_shell_quoting(store, workdir):
    store.put_bytes(targz({"train.py": V3_SCRIPT}), f"{BUCKET}/src/sourcedir.tar.gz")
    store.put_bytes(b"x\n1\n", f"{BUCKET}/data/train/train.csv")
    step = training_step(
        {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"{BUCKET}/src/sourcedir.tar.gz"',
            "learning-rate": "2.50",
            "target": '"customer\'s churn"',
        },
        {"train": f"{BUCKET}/data/train"},
    )
    result, seen = train(store, workdir, step)
    # The v2 toolkit sets the variables itself (no shell): the quote is carried.
    assert result.status == "Succeeded", result.failure_reason
    assert seen["argv"] == ["--learning-rate", "2.5", "--target", "customer's churn"]


# ---------------------------------------------------------------------------- image environment
VERSIONS_SCRIPT = """
    import json, os, sys
    import numpy, pandas, sklearn
    with open(os.path.join(sys.argv[1], "versions.json"), "w") as fh:
        json.dump({
            "python": "%d.%d.%d" % sys.version_info[:3],
            "sklearn": sklearn.__version__,
            "pandas": pandas.__version__,
            "numpy": numpy.__version__,
        }, fh)
"""


def test_step_runs_with_the_image_library_versions(store, workdir, tmp_path):
    result = run(workdir, script_step(store, tmp_path, "Versions", VERSIONS_SCRIPT, SKLEARN_19))
    assert result.status == "Succeeded", result.failure_reason
    seen = output_json(result, "Versions", "versions.json")
    assert seen["sklearn"] == "1.9.0" and seen["pandas"] == "2.2.3" and seen["numpy"] == "2.5.1"
    environment = result.step("Versions")["environment"]
    assert environment["image"] == "sklearn-1.9-0"
    assert "scikit-learn==1.9.0" in environment["versions"]
    assert seen["python"] == environment["python_version"]
    if Path.home().joinpath(".pyenv/versions/3.12.1").is_dir():
        assert seen["python"] == "3.12.1"


def test_the_12_image_falls_back_to_the_runner_python_and_says_why(store, workdir, tmp_path):
    result = run(workdir, script_step(store, tmp_path, "Versions", ENV_SCRIPT, SKLEARN_12))
    assert result.status == "Succeeded", result.failure_reason
    environment = result.step("Versions")["environment"]
    assert environment["image"] == "sklearn-1.2-1"
    assert "pandas 1.1.3" in environment["note"] and "runner's own Python" in environment["note"]


def test_an_environment_that_cannot_be_built_fails_with_what_to_do(
    store, workdir, tmp_path, monkeypatch
):
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    result = run(
        workdir,
        script_step(store, tmp_path, "Versions", VERSIONS_SCRIPT, SKLEARN_19),
        environments=StepEnvironments(cache_dir=tmp_path / "cache"),
    )
    assert result.status == "Failed"
    reason = result.step("Versions")["failure_reason"]
    assert "sklearn-1.9-0" in reason and "could not be built" in reason
    assert "package index" in reason and "environments='current'" in reason
    assert not list((tmp_path / "cache").glob("sklearn-1.9-0-*/bin"))


def test_current_mode_runs_in_the_runner_python(store, workdir, tmp_path):
    import sys

    step = script_step(store, tmp_path, "Env", ENV_SCRIPT, SKLEARN_19)
    result = run(workdir, step, environments=StepEnvironments("current"))
    assert result.status == "Succeeded", result.failure_reason
    assert result.step("Env")["environment"]["python"] == sys.executable
    assert set(IMAGES) == {"sklearn-1.9-0", "sklearn-1.2-1"}


# ---------------------------------------------------------------------------- /opt/ml paths
# As AWS's abalone seed does: every path is the container's, hard-coded.
ABSOLUTE_PATHS_SCRIPT = """
    import glob, os, pathlib, sys
    import joblib
    import pandas as pd

    base_dir = "/opt/ml/processing"
    df = pd.read_csv(f"{base_dir}/input/data.csv")
    os.makedirs(f"{base_dir}/output/nested", exist_ok=True)
    df.assign(step=sys.argv[1]).to_csv(f"{base_dir}/output/nested/out.csv", index=False)
    joblib.dump({"step": sys.argv[1]}, f"{base_dir}/output/model.joblib")
    out = pathlib.Path(base_dir) / "output"
    (out / "seen.txt").write_text("\\n".join([
        sys.argv[1],
        ",".join(sorted(os.listdir(f"{base_dir}/input"))),
        ",".join(sorted(glob.glob(f"{base_dir}/output/*/*.csv"))),
        str(joblib.load("/opt/ml/processing/output/model.joblib")["step"]),
        str(pathlib.Path("/opt/ml/processing/input/data.csv").is_file()),
        str(os.path.isdir("/opt/ml")),
    ]))
"""


def test_scripts_with_container_paths_run_unchanged_each_in_its_own_opt_ml(
    store, workdir, tmp_path
):
    put_script(store, tmp_path, "abalone.py", ABSOLUTE_PATHS_SCRIPT)
    steps = []
    for name in ("Left", "Right"):
        store.put_bytes(f"x\n{len(name)}\n".encode(), f"{BUCKET}/data/{name}/data.csv")
        step = processing_step(
            name,
            "abalone.py",
            inputs=[s3_input("data", f"{BUCKET}/data/{name}/data.csv", "/opt/ml/processing/input")],
            outputs=[s3_output("out", run_output(name), "/opt/ml/processing/output")],
            arguments=[name],
        )
        step["Arguments"]["AppSpecification"]["ImageUri"] = SKLEARN_19
        steps.append(step)
    result = run(workdir, *steps)
    assert result.status == "Succeeded", result.failure_reason
    for name in ("Left", "Right"):
        [out] = result.step(name)["outputs"]
        folder = Path(out["local_path"])
        seen = (folder / "seen.txt").read_text().splitlines()
        assert seen == [
            name,
            "code,data.csv",
            "/opt/ml/processing/output/nested/out.csv",
            name,
            "True",
            "True",
        ]
        assert (folder / "nested" / "out.csv").read_text().splitlines()[1] == f"{len(name)},{name}"
        assert (folder / "model.joblib").is_file()
    # They ran at once: each saw its own /opt/ml, not the other's.
    left, right = result.step("Left"), result.step("Right")
    assert left["start_time"] < right["end_time"] and right["start_time"] < left["end_time"]
