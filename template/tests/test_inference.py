"""Exercise the serving handlers (scripts/inference.py) the way the SageMaker container does.

The model is the one the scripts trained on the project's sample (`sample_run`, conftest.py);
the handlers are loaded from the file, not from the package.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def handlers(scripts_dir, monkeypatch):
    """A fresh copy of inference.py, imported from its file like the container does."""
    spec = importlib.util.spec_from_file_location(
        "inference_under_test", scripts_dir / "inference.py"
    )
    module = importlib.util.module_from_spec(spec)
    # No __pycache__ in scripts/: SDK v2 tars that folder, and the definition would change.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def model(handlers, sample_run):
    return handlers.model_fn(str(sample_run.model_dir))


@pytest.fixture
def batch_lines(sample_run) -> list[str]:
    return (sample_run.split / "batch" / "batch.csv").read_text().splitlines()


def serve(handlers, model, body, content_type="text/csv", accept="text/csv"):
    data = handlers.input_fn(body, content_type)
    prediction = handlers.predict_fn(data, model)
    return handlers.output_fn(prediction, accept)


def csv_predictions(body: str) -> list[str]:
    assert body.endswith("\n")
    return [row[0] for row in csv.reader(body.splitlines())]


def assert_valid(predictions, model, problem_type):
    """Each prediction is one of the training labels, or a finite number for regression."""
    if problem_type == "classification":
        labels = {str(label) for label in model["metadata"]["classes"]}
        assert {str(p) for p in predictions} <= labels
    else:
        assert all(math.isfinite(float(p)) for p in predictions)


def test_model_fn_loads_pipeline_and_metadata(model, target_column, problem_type):
    assert hasattr(model["pipeline"], "predict")
    assert model["metadata"]["target_column"] == target_column
    assert model["metadata"]["problem_type"] == problem_type


def test_input_fn_gives_feature_columns_in_order(handlers, model, batch_lines):
    frame = handlers.input_fn(batch_lines[0], "text/csv")
    metadata = model["metadata"]
    assert list(frame.columns) == metadata["feature_columns"]
    assert len(frame) == 1
    for column in metadata["numeric_columns"]:
        assert pd.api.types.is_numeric_dtype(frame[column])


def test_single_csv_row_gives_one_prediction(handlers, model, batch_lines, problem_type):
    for body in (batch_lines[0], batch_lines[0] + "\n", batch_lines[0].encode("utf-8")):
        output, content_type = serve(handlers, model, body)
        assert content_type == "text/csv"
        predictions = csv_predictions(output)
        assert len(predictions) == 1
        assert_valid(predictions, model, problem_type)


def test_batch_file_gives_one_line_per_row(handlers, model, batch_lines, problem_type):
    output, _ = serve(handlers, model, "\n".join(batch_lines) + "\n")
    predictions = csv_predictions(output)
    assert len(predictions) == len(batch_lines)
    assert_valid(predictions, model, problem_type)


def test_header_line_is_tolerated(handlers, model, batch_lines):
    header = ",".join(model["metadata"]["feature_columns"])
    without, _ = serve(handlers, model, "\n".join(batch_lines))
    with_header, _ = serve(handlers, model, "\n".join([header] + batch_lines))
    assert with_header == without


def test_a_header_with_other_columns_is_refused_naming_them(
    handlers, model, batch_lines, target_column
):
    columns = model["metadata"]["feature_columns"]
    renamed = [f"{columns[0]}_renamed", *columns[1:]]
    with pytest.raises(ValueError, match="header line's columns differ") as caught:
        handlers.input_fn("\n".join([",".join(renamed), batch_lines[0]]), "text/csv")
    message = str(caught.value)
    assert f"missing '{columns[0]}'" in message and f"unexpected '{renamed[0]}'" in message
    assert f"in this order: {', '.join(columns)}" in message

    with_target = [*columns, target_column]
    with pytest.raises(ValueError, match=f"unexpected '{target_column}'"):
        handlers.input_fn(",".join(with_target) + "\n" + batch_lines[0] + ",x", "text/csv")
    if len(columns) > 1:
        swapped = [columns[1], columns[0], *columns[2:]]
        with pytest.raises(ValueError, match="the same columns in another order"):
            handlers.input_fn(",".join(swapped) + "\n" + batch_lines[0], "text/csv")


def test_a_header_of_unknown_names_is_not_scored_as_a_row(handlers, model, batch_lines):
    """Text where every numeric column has a number: a header, not a row of missing values.
    (With no numeric column, such a line cannot be told from a row of unseen categories.)"""
    metadata = model["metadata"]
    names = [f"field_{i}" for i in range(len(metadata["feature_columns"]))]
    body = ",".join(names) + "\n" + batch_lines[0]
    if not metadata["numeric_columns"]:
        assert len(handlers.input_fn(body, "text/csv")) == 2
        return
    with pytest.raises(ValueError, match="header line's columns differ") as caught:
        handlers.input_fn(body, "text/csv")
    assert f"unexpected '{names[0]}'" in str(caught.value)


def test_json_input_matches_csv_input(handlers, model, sample_run, target_column, problem_type):
    test_df = pd.read_csv(sample_run.split / "test" / "test.csv", dtype=str)
    features = test_df.drop(columns=[target_column]).astype(object)
    records = features.where(features.notna(), None).to_dict(orient="records")
    csv_body = (sample_run.split / "batch" / "batch.csv").read_text()
    expected = csv_predictions(serve(handlers, model, csv_body)[0])

    for document, count in (
        (records, len(records)),
        ({"instances": records}, len(records)),
        (records[0], 1),
    ):
        output, content_type = serve(
            handlers, model, json.dumps(document), "application/json", "application/json"
        )
        assert content_type == "application/json"
        predictions = json.loads(output)["predictions"]
        assert len(predictions) == count
        assert [str(p) for p in predictions] == expected[:count]
        assert_valid(predictions, model, problem_type)


def test_wrong_field_count_is_explained(handlers, model, batch_lines):
    columns = model["metadata"]["feature_columns"]
    too_many = batch_lines[0] + ",surplus"
    with pytest.raises(ValueError, match=f"expected {len(columns)} fields") as caught:
        handlers.input_fn("\n".join([batch_lines[0], too_many]), "text/csv")
    message = str(caught.value)
    assert f"got {len(columns) + 1}" in message and "line 2" in message
    assert all(column in message for column in columns)


def test_missing_value_and_unseen_category_still_predict(
    handlers, model, batch_lines, problem_type
):
    metadata = model["metadata"]
    fields = next(csv.reader([batch_lines[0]]))
    fields[0] = ""
    for column in metadata["categorical_columns"]:
        fields[metadata["feature_columns"].index(column)] = "a-value-never-seen-in-training"
    output, _ = serve(handlers, model, ",".join(fields))
    predictions = csv_predictions(output)
    assert len(predictions) == 1
    assert_valid(predictions, model, problem_type)

    empty_row = "," * (len(fields) - 1)
    assert len(csv_predictions(serve(handlers, model, empty_row)[0])) == 1
    partial = {metadata["feature_columns"][0]: None}
    output, _ = serve(handlers, model, json.dumps(partial), "application/json")
    assert_valid(csv_predictions(output), model, problem_type)


def test_unsupported_content_type_names_the_supported_ones(handlers, model, batch_lines):
    with pytest.raises(ValueError, match="text/csv") as caught:
        handlers.input_fn(batch_lines[0], "application/x-parquet")
    assert "application/json" in str(caught.value)


def test_output_defaults_to_csv_and_handles_numpy_values(handlers):
    for accept in (None, "", "*/*", "text/csv; charset=utf-8"):
        body, content_type = handlers.output_fn(np.array([1, 2]), accept)
        assert (body, content_type) == ("1\n2\n", "text/csv")
    body, _ = handlers.output_fn(np.array([np.float64(1.5), np.float64(2.0)]), "application/json")
    assert json.loads(body) == {"predictions": [1.5, 2.0]}
    with pytest.raises(ValueError, match="text/csv"):
        handlers.output_fn(np.array([1]), "application/x-protobuf")


def test_input_fn_before_model_fn_explains_itself(handlers, batch_lines):
    with pytest.raises(RuntimeError, match="model_fn"):
        handlers.input_fn(batch_lines[0], "text/csv")
