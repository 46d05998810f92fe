"""The pipeline scripts on the sample and on broken inputs, run with the command line and the
environment variables SageMaker gives them (in this process: see script_runner.py).

Everything comes from fixtures (scripts_dir, sample_csv, target_column, problem_type, metric),
so these tests hold for whichever sample dataset the project was rendered with.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import joblib
import pandas as pd
import pytest
from script_runner import ScriptResult
from script_runner import run_script as run_file

GATE_SECTION = {
    "classification": "multiclass_classification_metrics",
    "regression": "regression_metrics",
}
UNIT_INTERVAL = {"accuracy", "f1_macro", "weighted_f1", "weighted_precision", "weighted_recall"}
# The first bytes of a real PNG file, including the NUL bytes of its header chunk.
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02"


def run_script(scripts_dir: Path, name: str, *args, env: dict | None = None) -> ScriptResult:
    return run_file(scripts_dir / name, *args, env=env)


def preprocess(scripts_dir, input_dir, output_dir, target_column, problem_type):
    return run_script(
        scripts_dir,
        "preprocess.py",
        "--input-dir",
        input_dir,
        "--output-dir",
        output_dir,
        "--target-column",
        target_column,
        "--problem-type",
        problem_type,
    )


def train(scripts_dir, train_dir, model_dir, *hyperparameters):
    env = {"SM_CHANNEL_TRAIN": str(train_dir), "SM_MODEL_DIR": str(model_dir)}
    return run_script(scripts_dir, "train.py", *hyperparameters, env=env)


def assert_ok(result):
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def assert_fails_clearly(result) -> str:
    """A failure must exit non-zero with a sentence on stderr, never a traceback."""
    assert result.returncode != 0, f"expected a failure, got success:\n{result.stdout}"
    assert result.stderr.strip(), "a failure must explain itself on stderr"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def labelled(sample_csv, target_column) -> pd.DataFrame:
    """The sample as text, keeping only rows that have a target value."""
    data = pd.read_csv(sample_csv, dtype=str)
    return data.loc[data[target_column].notna()].reset_index(drop=True)


def write_input(folder: Path, name: str, content) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return folder


# --- preprocess -------------------------------------------------------------------------------


def test_preprocess_splits_the_sample(sample_run, labelled, target_column, problem_type):
    train_df = pd.read_csv(sample_run.split / "train" / "train.csv", dtype=str)
    test_df = pd.read_csv(sample_run.split / "test" / "test.csv", dtype=str)
    assert list(train_df.columns) == list(labelled.columns)
    assert list(test_df.columns) == list(labelled.columns)
    assert len(train_df) > 0 and len(test_df) > 0
    assert len(train_df) + len(test_df) == len(labelled)
    assert str(len(train_df)) in sample_run.preprocess.stdout

    batch_path = sample_run.split / "batch" / "batch.csv"
    lines = batch_path.read_text().splitlines()
    assert len(lines) == len(test_df)
    features = [c for c in labelled.columns if c != target_column]
    rows = list(csv.reader(lines))
    assert all(len(row) == len(features) for row in rows)
    assert rows[0] != features, "batch.csv must not have a header"
    # Same rows, same order as test.csv, minus the target.
    batch = pd.read_csv(batch_path, header=None, names=features, dtype=str)
    expected = test_df.drop(columns=[target_column]).reset_index(drop=True)
    pd.testing.assert_frame_equal(batch, expected, check_dtype=False)

    if problem_type == "classification":
        assert set(train_df[target_column]) == set(labelled[target_column])


def test_preprocess_fingerprints_the_input(sample_run, sample_csv, target_column):
    """sha256, rows, and each column with the type train.py gives it: what the version records."""
    import hashlib

    found = json.loads((sample_run.split / "fingerprint" / "fingerprint.json").read_text())
    assert found["sha256"] == hashlib.sha256(sample_csv.read_bytes()).hexdigest()
    assert found["files"] == [
        {"name": sample_csv.name, "sha256": found["sha256"], "bytes": sample_csv.stat().st_size}
    ]
    header = next(csv.reader(sample_csv.open(encoding="utf-8-sig")))
    assert [c["name"] for c in found["columns"]] == header
    assert found["column_count"] == len(header)
    assert found["rows"] == len(pd.read_csv(sample_csv))
    assert [c["name"] for c in found["columns"] if c.get("target")] == [target_column]
    metadata = json.loads((sample_run.model_dir / "metadata.json").read_text())
    types = {c["name"]: c["type"] for c in found["columns"]}
    assert {name: types[name] for name in metadata["feature_columns"]} == {
        **{name: "numeric" for name in metadata["numeric_columns"]},
        **{name: "categorical" for name in metadata["categorical_columns"]},
    }
    schema = json.dumps([[c["name"], c["type"]] for c in found["columns"]], separators=(",", ":"))
    assert found["schema_sha256"] == hashlib.sha256(schema.encode()).hexdigest()


def test_preprocess_flattens_line_breaks_inside_values(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    """A quoted value spanning lines would shift batch transform's records (one per line)."""
    data = labelled.copy()
    data["note"] = [
        f"row {i}\nsecond line\r\n third" if i % 2 else "plain" for i in range(len(data))
    ]
    write_input(tmp_path / "in", "data.csv", data)
    assert len((tmp_path / "in" / "data.csv").read_text().splitlines()) > len(data) + 1

    result = preprocess(scripts_dir, tmp_path / "in", tmp_path / "out", target_column, problem_type)

    assert_ok(result)
    assert "line breaks inside the text values of note became spaces" in result.stdout
    test_df = pd.read_csv(tmp_path / "out" / "test" / "test.csv", dtype=str)
    batch = (tmp_path / "out" / "batch" / "batch.csv").read_text().splitlines()
    assert len(batch) == len(test_df)  # one record per line: nothing shifts
    train_df = pd.read_csv(tmp_path / "out" / "train" / "train.csv", dtype=str)
    notes = set(train_df["note"]) | set(test_df["note"])
    assert all("\n" not in note and "\r" not in note for note in notes)
    assert any(note.endswith(" second line third") for note in notes), notes


def test_preprocess_concatenates_several_csv_files(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    half = len(labelled) // 2
    write_input(tmp_path / "in", "part_1.csv", labelled.iloc[:half])
    write_input(tmp_path / "in", "part_2.csv", labelled.iloc[half:])
    result = preprocess(scripts_dir, tmp_path / "in", tmp_path / "out", target_column, problem_type)
    assert_ok(result)
    train_df = pd.read_csv(tmp_path / "out" / "train" / "train.csv")
    test_df = pd.read_csv(tmp_path / "out" / "test" / "test.csv")
    assert len(train_df) + len(test_df) == len(labelled)


def test_preprocess_rejects_csv_files_with_different_headers(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    write_input(tmp_path / "in", "a.csv", labelled)
    write_input(tmp_path / "in", "b.csv", labelled.rename(columns={target_column: "renamed"}))
    result = preprocess(scripts_dir, tmp_path / "in", tmp_path / "out", target_column, problem_type)
    message = assert_fails_clearly(result)
    assert "b.csv" in message and "header" in message


def test_preprocess_names_the_missing_target_and_lists_columns(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    folder = write_input(tmp_path / "in", "data.csv", labelled.drop(columns=[target_column]))
    result = preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    message = assert_fails_clearly(result)
    assert f"'{target_column}'" in message
    for column in labelled.columns:
        if column != target_column:
            assert column in message


def test_preprocess_rejects_an_empty_file(scripts_dir, target_column, problem_type, tmp_path):
    folder = write_input(tmp_path / "in", "data.csv", b"")
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert "empty" in message


def test_preprocess_rejects_a_header_without_rows(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    folder = write_input(tmp_path / "in", "data.csv", ",".join(labelled.columns) + "\n")
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert "no data rows" in message


def test_preprocess_rejects_a_class_with_a_single_row(
    scripts_dir, labelled, target_column, tmp_path
):
    # Relabel part of the sample so this holds for regression samples too.
    rows = labelled.head(30)
    labels = ["alpha", "beta"] * 15
    labels[-1] = "lonely"
    folder = write_input(tmp_path / "in", "data.csv", rows.assign(**{target_column: labels}))
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, "classification")
    )
    assert "'lonely' (1 row)" in message
    assert "add rows" in message.lower()


def test_preprocess_rejects_a_non_numeric_regression_target(
    scripts_dir, labelled, target_column, tmp_path
):
    rows = labelled.head(30).assign(**{target_column: ["high", "low", "12.5"] * 10})
    folder = write_input(tmp_path / "in", "data.csv", rows)
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, "regression")
    )
    assert "numeric" in message and "'high'" in message


def test_preprocess_rejects_too_few_rows(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    folder = write_input(tmp_path / "in", "data.csv", labelled.head(5))
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert "only 5 row" in message


def test_preprocess_rejects_an_all_empty_target(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    folder = write_input(tmp_path / "in", "data.csv", labelled.assign(**{target_column: None}))
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert "empty" in message and f"'{target_column}'" in message


def test_preprocess_drops_rows_without_target_and_warns(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    target = labelled[target_column]
    # Blank two rows of the commonest class so every class keeps enough rows to stratify.
    pool = target == target.mode()[0] if problem_type == "classification" else target.notna()
    blanked = labelled.index[pool][:2]
    rows = labelled.assign(**{target_column: target.where(~labelled.index.isin(blanked))})
    folder = write_input(tmp_path / "in", "data.csv", rows)
    result = preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    assert_ok(result)
    assert "warning" in result.stderr and "2 row" in result.stderr
    train_df = pd.read_csv(tmp_path / "out" / "train" / "train.csv")
    test_df = pd.read_csv(tmp_path / "out" / "test" / "test.csv")
    assert len(train_df) + len(test_df) == len(labelled) - 2


def test_preprocess_rejects_binary_data_named_csv(
    scripts_dir, target_column, problem_type, tmp_path
):
    folder = write_input(tmp_path / "in", "data.csv", PNG_BYTES + bytes(range(256)))
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert "not a text csv" in message.lower()


def test_preprocess_rejects_a_json_document(
    scripts_dir, labelled, target_column, problem_type, tmp_path
):
    document = json.dumps(labelled.head(20).to_dict(orient="records"), indent=2)
    folder = write_input(tmp_path / "in", "data.csv", document)
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert "JSON" in message


def test_preprocess_lists_what_it_found_when_there_is_no_csv(
    scripts_dir, target_column, problem_type, tmp_path
):
    folder = write_input(tmp_path / "in", "picture.png", PNG_BYTES)
    message = assert_fails_clearly(
        preprocess(scripts_dir, folder, tmp_path / "out", target_column, problem_type)
    )
    assert ".csv" in message and "picture.png" in message


# --- train ------------------------------------------------------------------------------------


def test_train_writes_model_metadata_and_serving_code(
    sample_run, scripts_dir, target_column, problem_type
):
    model_dir = sample_run.model_dir
    assert (model_dir / "model.joblib").is_file()
    served = model_dir / "code" / "inference.py"
    assert served.read_bytes() == (scripts_dir / "inference.py").read_bytes()

    metadata = json.loads((model_dir / "metadata.json").read_text())
    train_df = pd.read_csv(sample_run.split / "train" / "train.csv", dtype=str)
    features = [c for c in train_df.columns if c != target_column]
    assert metadata["target_column"] == target_column
    assert metadata["problem_type"] == problem_type
    assert metadata["feature_columns"] == features
    split_columns = metadata["numeric_columns"] + metadata["categorical_columns"]
    assert sorted(split_columns) == sorted(features)
    assert metadata["sklearn_version"]
    if problem_type == "classification":
        assert "classes" in metadata
    else:
        assert "classes" not in metadata
    assert "training" in sample_run.train.stdout


def test_train_ignores_unknown_arguments(
    sample_run, scripts_dir, target_column, problem_type, tmp_path
):
    result = train(
        scripts_dir,
        sample_run.split / "train",
        tmp_path / "model",
        "--target-column",
        target_column,
        "--problem-type",
        problem_type,
        "--n-estimators",
        "5",
        "--sagemaker_added_option",
        "whatever",
    )
    assert_ok(result)
    assert (tmp_path / "model" / "model.joblib").is_file()


def test_train_names_a_wrong_target_column(sample_run, scripts_dir, problem_type, tmp_path):
    result = train(
        scripts_dir,
        sample_run.split / "train",
        tmp_path / "model",
        "--target-column",
        "no_such_column",
        "--problem-type",
        problem_type,
    )
    message = assert_fails_clearly(result)
    assert "'no_such_column'" in message and "Columns found" in message


# --- evaluate ---------------------------------------------------------------------------------


def tar_model(model_dir: Path, destination: Path) -> Path:
    """Pack the model folder like SageMaker does: its files at the archive root."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(destination / "model.tar.gz", "w:gz") as archive:
        for item in sorted(model_dir.iterdir()):
            archive.add(item, arcname=item.name)
    return destination


def evaluate(scripts_dir, model_dir, test_dir, output_dir, target_column, problem_type):
    return run_script(
        scripts_dir,
        "evaluate.py",
        "--model-dir",
        model_dir,
        "--test-dir",
        test_dir,
        "--output-dir",
        output_dir,
        "--target-column",
        target_column,
        "--problem-type",
        problem_type,
    )


def assert_gate_metric(report: dict, problem_type: str, metric: str) -> float:
    value = report[GATE_SECTION[problem_type]][metric]["value"]
    assert isinstance(value, float) and math.isfinite(value)
    if metric in UNIT_INTERVAL:
        assert 0.0 <= value <= 1.0
    elif metric in ("rmse", "mae", "mse"):
        assert value >= 0.0
    elif metric == "r2":
        assert value <= 1.0
    return value


def test_evaluate_scores_a_tarred_model(
    sample_run, scripts_dir, target_column, problem_type, metric, tmp_path
):
    archive_dir = tar_model(sample_run.model_dir, tmp_path / "model")
    result = evaluate(
        scripts_dir,
        archive_dir,
        sample_run.split / "test",
        tmp_path / "evaluation",
        target_column,
        problem_type,
    )
    assert_ok(result)
    assert metric in result.stdout
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert_gate_metric(report, problem_type, metric)

    section = report[GATE_SECTION[problem_type]]
    for name, entry in section.items():
        if name != "confusion_matrix":
            assert set(entry) == {"value", "standard_deviation"}, name
            assert isinstance(entry["value"], float)
    if problem_type == "regression":
        assert set(section) == {"mse", "rmse", "mae", "r2"}
        return
    for gate in ("accuracy", "f1_macro"):
        assert_gate_metric(report, problem_type, gate)
    test_df = pd.read_csv(sample_run.split / "test" / "test.csv", dtype=str)
    matrix = section["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == len(test_df)
    assert set(test_df[target_column]) <= set(matrix)
    metadata = json.loads((sample_run.model_dir / "metadata.json").read_text())
    if len(metadata["classes"]) == 2:
        binary = report["binary_classification_metrics"]
        assert {"accuracy", "precision", "recall", "f1", "auc"} <= set(binary)
        assert 0.0 <= binary["auc"]["value"] <= 1.0


def test_evaluate_reads_an_unpacked_model_folder(
    sample_run, scripts_dir, target_column, problem_type, metric, tmp_path
):
    result = evaluate(
        scripts_dir,
        sample_run.model_dir,
        sample_run.split / "test",
        tmp_path / "evaluation",
        target_column,
        problem_type,
    )
    assert_ok(result)
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert_gate_metric(report, problem_type, metric)


def test_evaluate_explains_a_missing_model(
    sample_run, scripts_dir, target_column, problem_type, tmp_path
):
    (tmp_path / "empty").mkdir()
    result = evaluate(
        scripts_dir,
        tmp_path / "empty",
        sample_run.split / "test",
        tmp_path / "evaluation",
        target_column,
        problem_type,
    )
    message = assert_fails_clearly(result)
    assert "model.tar.gz" in message


@pytest.fixture
def registry_api(tmp_path):
    """A model registry and an object store behind SageMaker's and S3's API, as the runner
    serves them to a step: evaluate.py reaches them with boto3, exactly as in a job."""
    from sagemaker_pipelines_local import LocalModelRegistry, LocalObjectStore
    from sagemaker_pipelines_local.endpoints import LiveEndpoints

    api = LiveEndpoints(tmp_path / "workspace", region="us-east-1", account_id="123456789012")
    registry, store = LocalModelRegistry(api.workspace), LocalObjectStore(api.workspace)

    def approve(model_dir: Path, name: str) -> int:
        """Register the model folder, packed, as an Approved version; return its number."""
        uri = store.put_file(tar_model(model_dir, tmp_path / name) / "model.tar.gz",
                             f"s3://bucket/{name}/model.tar.gz")  # fmt: skip
        package = {
            "ModelApprovalStatus": "Approved",
            "InferenceSpecification": {"Containers": [{"Image": "x", "ModelDataUrl": uri}]},
        }
        return registry.register("group", package, region="us-east-1")["ModelPackageVersion"]

    yield SimpleNamespace(env=api.aws_environment(), approve=approve)
    api.close()


def meet_the_champion(scripts_dir, sample_run, registry_api, out, metric, margin="0"):
    metadata = json.loads((sample_run.model_dir / "metadata.json").read_text())
    return run_script(
        scripts_dir, "evaluate.py", "--model-dir", sample_run.model_dir,
        "--test-dir", sample_run.split / "test", "--output-dir", out,
        "--target-column", metadata["target_column"], "--problem-type", metadata["problem_type"],
        "--model-package-group", "group", "--metric", metric, "--margin", margin,
        env=registry_api.env,
    )  # fmt: skip


def test_evaluate_meets_the_approved_champion_on_the_same_rows(
    sample_run, scripts_dir, registry_api, problem_type, metric, tmp_path
):
    # Nothing Approved yet: nothing to beat, the required value is the model's own score.
    assert_ok(meet_the_champion(scripts_dir, sample_run, registry_api, tmp_path / "a", metric))
    report = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    duel, own = report["champion_challenger"], assert_gate_metric(report, problem_type, metric)
    assert (duel["champion_version"], duel["champion"]) == (None, None)
    assert duel["challenger"] == duel["required"] == own and duel["passed"]

    # The same model Approved as version 1: equal scores pass ("not worse")...
    assert registry_api.approve(sample_run.model_dir, "v1") == 1
    result = meet_the_champion(scripts_dir, sample_run, registry_api, tmp_path / "b", metric)
    assert_ok(result)
    duel = json.loads((tmp_path / "b" / "evaluation.json").read_text())["champion_challenger"]
    assert (duel["champion_version"], duel["champion"], duel["passed"]) == (1, own, True)
    assert "the approved version 1 scores" in result.stdout

    # ... and fail with a margin: the new model must then be better by that much.
    result = meet_the_champion(
        scripts_dir, sample_run, registry_api, tmp_path / "c", metric, margin="0.5"
    )
    assert_ok(result)
    duel = json.loads((tmp_path / "c" / "evaluation.json").read_text())["champion_challenger"]
    lower = metric in ("rmse", "mae")
    assert duel["required"] == pytest.approx(own - 0.5 if lower else own + 0.5)
    assert duel["passed"] is False and duel["margin"] == 0.5


def test_evaluate_refuses_a_model_whose_columns_differ_from_the_champions(
    sample_run, scripts_dir, registry_api, metric, tmp_path
):
    champion = tmp_path / "champion"
    shutil.copytree(sample_run.model_dir, champion)
    metadata = json.loads((champion / "metadata.json").read_text())
    renamed = metadata["feature_columns"][0]
    metadata["feature_columns"][0] = "old name"
    (champion / "metadata.json").write_text(json.dumps(metadata))
    registry_api.approve(champion, "v1")

    result = meet_the_champion(scripts_dir, sample_run, registry_api, tmp_path / "out", metric)

    message = assert_fails_clearly(result)
    assert "no longer takes old name" in message and f"new column(s) {renamed}" in message
    assert "approved version 1" in message
    assert not (tmp_path / "out" / "evaluation.json").exists()


def test_model_predicts_original_labels(sample_run, target_column, problem_type):
    model = joblib.load(sample_run.model_dir / "model.joblib")
    metadata = json.loads((sample_run.model_dir / "metadata.json").read_text())
    test_df = pd.read_csv(sample_run.split / "test" / "test.csv", dtype=str)
    features = pd.DataFrame(
        {
            column: pd.to_numeric(test_df[column], errors="coerce")
            if column in metadata["numeric_columns"]
            else test_df[column].astype(object)
            for column in metadata["feature_columns"]
        }
    )
    predictions = [p.item() if hasattr(p, "item") else p for p in model.predict(features)]
    assert len(predictions) == len(test_df)
    if problem_type == "regression":
        assert all(isinstance(p, float) and math.isfinite(p) for p in predictions)
        return
    # Same labels and same kind of value as in the data: strings stay strings, ints stay ints.
    train_labels = pd.read_csv(sample_run.split / "train" / "train.csv")[target_column]
    originals = {label.item() if hasattr(label, "item") else label for label in train_labels}
    assert set(metadata["classes"]) == originals
    assert set(predictions) <= originals
    assert {type(p) for p in predictions} <= {type(label) for label in originals}
