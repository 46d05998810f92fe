"""Wrong answers are refused with a message naming the question, and nothing is written."""

from __future__ import annotations

import pytest
from conftest import DATA, render

HOUSING = {"dataset_path": str(DATA / "housing_like.csv"), "target_column": "price"}

BAD_ANSWERS = [
    ({"project_slug": "Bad_Slug"}, "project_slug", "^[a-z]([a-z0-9-]*[a-z0-9])?$"),
    ({"project_slug": "my-model-"}, "project_slug", "no hyphen last"),
    ({"project_slug": "9lives"}, "project_slug", "a letter first"),
    ({"package_name": "class"}, "package_name", "keyword"),
    ({"package_name": "my-package"}, "package_name", "not a Python identifier"),
    ({"metric_threshold": 1.5}, "metric_threshold", "between 0 and 1"),
    ({"metric_threshold": "high"}, "metric_threshold", "not a number"),
    ({"metric": "rmse"}, "metric", "'rmse' is not in"),
    ({"champion_margin": "-0.01"}, "champion_margin", "worse than the approved one"),
    ({"champion_margin": "1"}, "champion_margin", "below 1"),
    ({"champion_margin": "some"}, "champion_margin", "not a number"),
    ({"processing_instance_type": "m5.large"}, "processing_instance_type", "ml.<family>.<size>"),
    ({"training_instance_type": "ml.m5"}, "training_instance_type", "ml.<family>.<size>"),
    ({"transform_instance_type": "ML.M5.LARGE"}, "transform_instance_type", "ml.<family>"),
    ({"inference_instance_types": ["ml.m5.large", "c5"]}, "inference_instance_types", "'c5'"),
    ({"inference_instance_types": []}, "inference_instance_types", "non-empty"),
    ({"framework_version": "1.2-1"}, "framework_version", "SDK v3 projects train and serve"),
    ({"sagemaker_sdk": "v2", "framework_version": "1.9-0"}, "framework_version",
     "SDK v2 projects train and serve with 1.2-1"),
    ({"sagemaker_sdk": "v2", "python_version": "3.12"}, "python_version", "Python 3.11 only"),
    ({"framework_version": "0.23-1"}, "framework_version", "0.23-1"),
    ({"sagemaker_sdk": "v1"}, "sagemaker_sdk", "v1"),
    ({"aws_region": "moon-east-1"}, "aws_region", "moon-east-1"),
    ({"encrypt_and_isolate": True, "training_instance_type": "ml.m5d.large"},
     "encrypt_and_isolate", "training_instance_type ml.m5d.large has local NVMe storage"),
    ({"encrypt_and_isolate": True, "inference_instance_types": ["ml.m5.large", "ml.g4dn.xlarge"]},
     "encrypt_and_isolate", "ml.g4dn.xlarge has local NVMe storage"),
    ({"python_version": "3.9"}, "python_version", "3.11 or newer"),
    ({"model_package_group_name": "bad_name!"}, "model_package_group_name", "1-63"),
    ({"pipeline_name": "-starts-with-hyphen"}, "pipeline_name", "starting and ending"),
    ({"target_column": "petal"}, "target_column", "sepal_length"),
    ({"dataset_path": "data.json", "target_column": "y"}, "dataset_path", ".csv"),
    ({**HOUSING, "target_column": "nope"}, "target_column", "'nope' is not in ['neighbourhood'"),
    ({**HOUSING, "target_column": "neighbourhood", "problem_type": "regression"},
     "problem_type", "'neighbourhood' holds text, and regression needs numbers"),
    ({**HOUSING, "problem_type": "regression", "metric_threshold": "low"},
     "metric_threshold", "give the largest rmse you accept"),
    ({**HOUSING, "problem_type": "regression", "metric": "r2", "metric_threshold": 2},
     "metric_threshold", "at most 1"),
    ({**HOUSING, "problem_type": "regression", "metric_threshold": -5},
     "metric_threshold", "must be positive"),
]  # fmt: skip


@pytest.mark.parametrize(("answers", "question", "rule"), BAD_ANSWERS)
def test_bad_answer_is_refused_at_the_prompt(tmp_path, answers, question, rule):
    destination = tmp_path / "project"
    with pytest.raises(ValueError) as refused:
        render(destination, **answers)
    message = str(refused.value)
    assert question in message and rule in message, message
    assert not destination.exists(), "a refused answer left files behind"


BAD_DATASETS = [
    # (answers, words the message must contain)
    ({"dataset_path": "/no/such/file.csv", "target_column": "y"}, ["does not exist"]),
    # No data to derive an rmse threshold from: the file's problem is what the user hears.
    ({"dataset_path": "/no/such/file.csv", "target_column": "y", "problem_type": "regression"},
     ["does not exist"]),
]  # fmt: skip


@pytest.mark.parametrize(("answers", "words"), BAD_DATASETS)
def test_dataset_checks_stop_the_render_and_leave_nothing(tmp_path, capfd, answers, words):
    destination = tmp_path / "project"
    with pytest.raises(Exception):  # noqa: B017 - Copier raises its TaskError
        render(destination, **answers)
    stderr = capfd.readouterr().err
    for word in words:
        assert word in stderr, stderr
    assert not destination.exists(), "a failed dataset check left a half-written project"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["is empty"]),
        (b"a,b,y\n", ["no data rows"]),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["binary file"]),
        (b'{"rows": [1, 2, 3]}\n', ["JSON"]),
        (b"x,y\n" + b"1,a\n" * 12 + b"2,b\n", ["'b' (1 row)", "cannot be split"]),
        (b"x,y\n" + b"1,5\n" * 12, ["single class ('5')"]),
        (b'x,y\n1,"two\nlines"\n2,6,7\n', ["record 3", "3 fields"]),
    ],
)
def test_bad_csv_content_is_refused(tmp_path, capfd, content, words):
    dataset = tmp_path / "data.csv"
    dataset.write_bytes(content)
    destination = tmp_path / "project"
    with pytest.raises(Exception):  # noqa: B017 - Copier raises its TaskError
        render(destination, dataset_path=str(dataset), target_column="y")
    stderr = capfd.readouterr().err
    for word in words:
        assert word in stderr, stderr
    assert not destination.exists()
