"""The questionnaire as a person answers it: real `copier copy` sessions in a pseudo-terminal,
and every default that depends on an earlier answer checked to be valid (Copier validates a
default before it shows the prompt: an invalid one ends the session with a traceback).

The CSVs here are written by the tests into temporary folders, outside this repository.
"""

from __future__ import annotations

import csv
import math
import random
import statistics
from pathlib import Path

import copier
import pytest
import yaml
from conftest import BIN, DATA, ROOT
from terminal import ENTER, ORDER, UP, Questionnaire


def questionnaire(destination: Path, cwd: Path) -> Questionnaire:
    return Questionnaire(BIN / "copier", ROOT, destination, cwd)


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def defaults(**data: object) -> dict:
    """The answers `copier copy --defaults --data ...` settles on (no file is written)."""
    worker = copier.run_copy(
        str(ROOT), "/nonexistent/pretend", data=data, defaults=True, unsafe=True, quiet=True,
        pretend=True, vcs_ref="HEAD", settings=copier.Settings(),
    )  # fmt: skip
    return dict(worker.answers.combined)


def floor4(value: float) -> float:
    """Four significant digits, rounded towards zero (a floor the constant predictor meets)."""
    scale = 10 ** (3 - math.floor(math.log10(abs(value))))
    return math.floor(value * scale) / scale


def write_csv(path: Path, header: list[str], rows: list[list[object]], bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def churn_csv(folder: Path) -> Path:
    """A churn table: the target is the first column; a quoted header holds a comma; a column
    name with an apostrophe cannot be a target; UTF-8 with a byte-order mark."""
    rng = random.Random(7)
    rows = []
    for _ in range(120):
        tenure, spend = rng.randint(1, 72), round(rng.uniform(15, 120), 2)
        churned = int(spend / 120 + rng.random() * 0.6 > 0.9 - tenure / 200)
        plan = rng.choice(["basic", "plus", "pro"])
        rows.append([churned, tenure, spend, plan, rng.choice(["ok", "late payment", ""])])
    header = ["churned", "tenure_months", "monthly spend, EUR", "plan", "agent's note"]
    return write_csv(folder / "Customer churn 2026.csv", header, rows, bom=True)


def flats_csv(folder: Path) -> Path:
    """Flat rents: a numeric target with many distinct values (a regression problem)."""
    rng = random.Random(11)
    rows = []
    for _ in range(200):
        area, rooms = round(rng.uniform(25, 140), 1), rng.randint(1, 5)
        district = rng.choice(["north", "south", "centre"])
        rent = round(6 * area + 90 * rooms + (300 if district == "centre" else 0)
                     + rng.gauss(0, 120), 2)  # fmt: skip
        rows.append([district, area, rooms, rent])
    return write_csv(folder / "flats.csv", ["district", "area_m2", "rooms", "rent_eur"], rows)


# ----------------------------------------------------------------------------- sessions
def test_sample_with_every_default(tmp_path):
    session = questionnaire(tmp_path / "iris-model", cwd=tmp_path)
    session.defaults_from("dataset_path")
    session.finish()
    assert session.asked == ORDER
    rendered = answers(tmp_path / "iris-model")
    expected = defaults()
    assert {k: rendered[k] for k in ORDER} == {k: expected[k] for k in ORDER}
    assert rendered["target_column"] == "species" and rendered["project_slug"] == "iris-classifier"
    assert (tmp_path / "iris-model" / "data" / "iris.csv").is_file()


def test_own_csv_choosing_the_target_from_the_list(tmp_path):
    dataset = churn_csv(tmp_path)
    session = questionnaire(tmp_path / "churn", cwd=tmp_path)
    session.type("dataset_path", str(dataset))
    # The default is the last usable column ('plan'); the target is three rows up.
    choices = session.answer("target_column", UP * 3 + ENTER)
    for column in ("churned", "tenure_months", "monthly spend, EUR", "plan", "agent's note"):
        assert column in choices, choices
    assert "» plan" in choices and "single quote" in choices, choices
    problem = session.answer("problem_type")
    assert "'churned' holds 2 distinct whole numbers in 120 rows" in problem, problem
    assert "» classification" in problem
    metric = session.answer("metric")
    assert "» accuracy" in metric
    session.answer("quality_gate")
    session.answer("metric_threshold")
    margin = session.answer("champion_margin")
    assert "better in accuracy than the version currently Approved" in margin, margin
    name = session.answer("project_name")
    assert "Customer Churn 2026 Classifier" in name, name
    session.defaults_from("project_slug")
    session.finish()

    project = tmp_path / "churn"
    rendered = answers(project)
    assert rendered["target_column"] == "churned"
    assert rendered["problem_type"] == "classification"
    assert rendered["project_slug"] == "customer-churn-2026-classifier"
    assert (project / "data" / "Customer-churn-2026.csv").read_bytes() == dataset.read_bytes()


def test_wrong_answers_are_asked_again_with_the_rule(tmp_path):
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("a,b,y\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("région,y\nÎle-de-France,1\n".encode("latin-1"))
    session = questionnaire(tmp_path / "corrected", cwd=tmp_path)
    session.type("dataset_path", "notes.txt")
    session.retype("must be a .csv file", str(tmp_path / "missing.csv"))
    session.retype("does not exist", str(header_only))
    session.retype("has a header but no data rows", str(latin1))
    session.retype("is not UTF-8 text", "")  # empty: the bundled sample
    for question in ORDER[1 : ORDER.index("project_slug")]:
        session.answer(question)
    session.type("project_slug", "Iris_Model")
    session.retype("must match ^[a-z]([a-z0-9-]*[a-z0-9])?$", "iris-model")
    package = session.answer("package_name")
    assert "iris_model" in package, package
    session.defaults_from("description")
    session.finish()
    rendered = answers(tmp_path / "corrected")
    assert rendered["dataset_path"] == "" and rendered["project_slug"] == "iris-model"
    assert rendered["package_name"] == "iris_model"


def test_regression_target_with_its_threshold_default(tmp_path):
    dataset = flats_csv(tmp_path)
    rents = [float(row["rent_eur"]) for row in csv.DictReader(dataset.open())]
    baseline = floor4(statistics.pstdev(rents))  # rmse of always predicting the mean rent
    session = questionnaire(tmp_path / "flats", cwd=tmp_path)
    session.type("dataset_path", "flats.csv")  # relative to where copier runs
    assert "» rent_eur" in session.answer("target_column")
    problem = session.answer("problem_type")
    assert "a quantity, so the default is regression" in problem and "» regression" in problem
    assert "» rmse" in session.answer("metric")
    session.answer("quality_gate")
    threshold = session.answer("metric_threshold")
    assert f"{baseline:g}" in threshold, (baseline, threshold)
    assert "always predicting the mean of 'rent_eur' scores" in threshold
    session.defaults_from("champion_margin")
    session.finish()

    project = tmp_path / "flats"
    rendered = answers(project)
    assert float(rendered["metric_threshold"]) == baseline
    assert rendered["project_name"] == "Flats Regressor"
    assert (
        f"metric_threshold: float = {baseline:g}"
        in (project / "src" / "flats_regressor" / "config.py").read_text()
    )
    # A project whose gate is this default runs its pipeline and passes its tests: the matrix
    # case housing-rmse (test_generated_projects.py) accepts the same rule's default.


# ----------------------------------------------------------------------------- defaults
def test_defaults_follow_the_data():
    housing = DATA / "housing_like.csv"
    prices = [float(row["price"]) for row in csv.DictReader(housing.open())]
    mean = statistics.fmean(prices)
    rmse = defaults(dataset_path=str(housing))
    assert (rmse["target_column"], rmse["problem_type"], rmse["metric"]) == (
        "price", "regression", "rmse")  # fmt: skip
    assert float(rmse["metric_threshold"]) == floor4(statistics.pstdev(prices))
    mae = defaults(dataset_path=str(housing), metric="mae")
    assert float(mae["metric_threshold"]) == floor4(statistics.fmean(abs(p - mean) for p in prices))
    penguins = defaults(dataset_path=str(DATA / "penguins_like.csv"))
    assert (penguins["target_column"], penguins["problem_type"], penguins["metric"]) == (
        "species", "classification", "accuracy")  # fmt: skip
    assert penguins["metric_threshold"] == "0.8"
    churn = defaults(dataset_path=str(DATA / "binary_numeric.csv"))
    assert (churn["target_column"], churn["problem_type"]) == ("churned", "classification")
    assert churn["project_name"] == "Binary Numeric Classifier"


def test_a_usual_target_name_is_preferred_to_the_last_column(tmp_path):
    data = write_csv(
        tmp_path / "t.csv", ["label", "x1", "x2"], [[i % 2, i, i * 2] for i in range(20)]
    )
    assert defaults(dataset_path=str(data))["target_column"] == "label"


@pytest.mark.parametrize(
    ("earlier", "checks"),
    [
        ({"project_name": "日本語のモデル"}, {"project_slug": "model", "package_name": "model"}),
        ({"project_name": "Class"}, {"project_slug": "class", "package_name": "class_model"}),
        ({"project_name": "Tests"}, {"package_name": "tests_model"}),
        ({"project_name": "2026 --- Sales!!"}, {"project_slug": "sales"}),
        ({"project_name": "A" * 90}, {"project_slug": "a" * 40}),
        ({"project_name": "x" * 39 + " y"}, {"project_slug": "x" * 39}),
        ({"project_slug": "a"}, {"model_package_group_name": "a", "pipeline_name": "a-pipeline"}),
        ({"project_slug": "a--b"}, {"model_package_group_name": "a--b", "package_name": "a__b"}),
        ({"project_slug": "x" * 40}, {"pipeline_name": "x" * 40 + "-pipeline"}),
        ({"sagemaker_sdk": "v2"}, {"framework_version": "1.2-1", "python_version": "3.11"}),
        ({"problem_type": "classification", "metric": "f1_macro"}, {"metric_threshold": "0.75"}),
        ({"dataset_path": str(DATA / "housing_like.csv"), "metric": "r2"},
         {"metric_threshold": "0.5"}),
        ({"dataset_path": str(DATA / "housing_like.csv"), "target_column": "bedrooms"},
         {"problem_type": "classification"}),
    ],
)  # fmt: skip
def test_every_derived_default_is_valid(earlier, checks):
    """`--defaults` takes each default through the question's validator, as the prompt does."""
    settled = defaults(**earlier)
    for key, value in checks.items():
        assert settled[key] == value, (key, settled[key])


def test_a_target_sagemaker_cannot_carry_is_refused(tmp_path):
    data = write_csv(
        tmp_path / "odd.csv",
        ["customer's churn", "2.50", "spend"],
        [[i % 2, i % 3, i * 1.5] for i in range(30)],
    )
    with pytest.raises(ValueError, match=r"single quote.*exit code 2"):
        defaults(dataset_path=str(data), target_column="customer's churn")
    with pytest.raises(ValueError, match=r"would reach the training script as '2.5'"):
        defaults(dataset_path=str(data), target_column="2.50")
    # The default skips the columns that cannot be targets.
    assert defaults(dataset_path=str(data))["target_column"] == "spend"
