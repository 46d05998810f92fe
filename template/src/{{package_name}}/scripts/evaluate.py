"""Score the trained model on the held-out test set and write evaluation.json.

Runs as the pipeline's evaluation step (inside the SageMaker scikit-learn container) and,
unchanged, as a local subprocess. The report uses SageMaker's model quality format:
every metric is {"value": float, "standard_deviation": float or "NaN"}, under
"multiclass_classification_metrics" (plus "binary_classification_metrics" for two classes)
or "regression_metrics".

With --model-package-group, the model also meets the champion: the newest Approved version
of the group, scored on the same rows. The "champion_challenger" section says which version
that is, both scores, the margin and the value the quality gate requires ("required"; with
no Approved version, the new model's own score: nothing to beat). A champion trained on
other columns is refused by name: the new model would break what calls the endpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NoReturn

import boto3
import joblib
import numpy as np
import pandas as pd
import sklearn
from botocore.exceptions import BotoCoreError, ClientError
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)


def fail(message: str) -> NoReturn:
    """Stop with a message the user can act on, and no traceback."""
    print(f"evaluate: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="/opt/ml/processing/model")
    parser.add_argument("--test-dir", default="/opt/ml/processing/test")
    parser.add_argument("--output-dir", default="/opt/ml/processing/evaluation")
    # Both default to what the model's metadata.json says; given values are cross-checked.
    parser.add_argument("--target-column")
    parser.add_argument("--problem-type", choices=["classification", "regression"])
    # Champion and challenger: compare with the group's newest Approved version.
    parser.add_argument("--model-package-group", default="", help="default: no comparison")
    parser.add_argument("--metric", help="the quality gate's metric (accuracy, rmse, ...)")
    parser.add_argument("--margin", type=float, default=0.0, help="how much better; 0: not worse")
    args = parser.parse_args()
    if args.model_package_group and not args.metric:
        parser.error("--metric is required with --model-package-group")
    if not math.isfinite(args.margin) or args.margin < 0:
        parser.error("--margin must be 0 or more (a negative margin lets a worse model pass)")
    return args


def extract(archive: Path, destination: Path) -> None:
    """Unpack regular files only, refusing paths that would land outside destination."""
    root = destination.resolve()
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                target = (root / member.name).resolve()
                if target != root and root not in target.parents:
                    fail(f"{archive.name} contains an unsafe path '{member.name}'. Rebuild it.")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is not None:
                        target.write_bytes(source.read())
    except (tarfile.TarError, EOFError, OSError) as error:
        fail(f"{archive} could not be unpacked ({error}). Check the training step's output.")


def locate_model(model_dir: Path, scratch: Path) -> Path:
    """Return the folder holding model.joblib, unpacking model.tar.gz when that is what we got."""
    if (model_dir / "model.joblib").is_file():
        return model_dir
    archive = model_dir / "model.tar.gz"
    if archive.is_file():
        extract(archive, scratch)
        found = sorted(scratch.rglob("model.joblib"))
        if found:
            return found[0].parent
        fail(f"{archive} does not contain model.joblib. Was it produced by train.py?")
    listing = ", ".join(p.name for p in sorted(model_dir.iterdir())) if model_dir.is_dir() else ""
    fail(
        f"expected model.tar.gz or model.joblib in {model_dir}, found: {listing or 'nothing'}. "
        "Pass the training step's model artifact as --model-dir."
    )


def load_model(folder: Path):
    metadata_path = folder / "metadata.json"
    if not metadata_path.is_file():
        fail(f"metadata.json is missing next to model.joblib in {folder}. Retrain with train.py.")
    metadata = json.loads(metadata_path.read_text())
    try:
        model = joblib.load(folder / "model.joblib")
    except Exception as error:  # noqa: BLE001 - unpickling across versions raises any type
        fail(
            f"model.joblib could not be loaded ({type(error).__name__}: {error}). It was trained "
            f"with scikit-learn {metadata.get('sklearn_version')}; this environment has "
            f"{sklearn.__version__}. Use the same scikit-learn version for train and evaluate."
        )
    return model, metadata


def read_test_data(test_dir: Path, metadata: dict) -> pd.DataFrame:
    path = test_dir / "test.csv"
    if not path.is_file():
        csv_files = sorted(test_dir.glob("*.csv")) if test_dir.is_dir() else []
        if len(csv_files) != 1:
            fail(
                f"expected test.csv in {test_dir}, found {len(csv_files)} .csv file(s). "
                "Pass preprocess.py's test output as --test-dir."
            )
        path = csv_files[0]
    try:
        # Text in, exactly as train.py reads its data (each distinct spelling stored once).
        data = pd.read_csv(path, dtype="category")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        fail(f"{path.name} could not be read as CSV ({error}). Regenerate it with preprocess.py.")
    needed = metadata["feature_columns"] + [metadata["target_column"]]
    absent = [c for c in needed if c not in data.columns]
    if absent:
        fail(
            f"{path.name} lacks column(s) {', '.join(absent)} that the model was trained with. "
            f"Columns found: {', '.join(data.columns)}."
        )
    data = data.loc[data[metadata["target_column"]].notna()]
    if len(data) == 0:
        fail(f"{path.name} has no rows with a target value. Check the preprocess output.")
    return data


def to_text(values: pd.Series) -> pd.Series:
    # str() every value so mixed types encode consistently; missing stays NaN for the imputer.
    text = values.map(str, na_action="ignore").astype(object)
    return text.where(text.notna(), np.nan)


def as_model_input(frame: pd.DataFrame, metadata: dict) -> pd.DataFrame:
    """Same cast as train.py and inference.py: each script runs alone in its container."""
    columns = {}
    for column in metadata["feature_columns"]:
        if column in metadata["numeric_columns"]:
            columns[column] = pd.to_numeric(frame[column], errors="coerce")
        else:
            columns[column] = to_text(frame[column])
    return pd.DataFrame(columns, index=frame.index)


def metric(value: float) -> dict:
    return {"value": float(value), "standard_deviation": "NaN"}


def predict_in_chunks(model, features: pd.DataFrame, rows: int = 100_000, proba: bool = False):
    """predict() a slice of rows at a time: one call on millions of rows holds several copies."""
    method = model.predict_proba if proba else model.predict
    return np.concatenate(
        [method(features.iloc[i : i + rows]) for i in range(0, len(features), rows)]
    )


def classification_report(y_true: pd.Series, model, features: pd.DataFrame) -> dict:
    # Labels are compared as text: the report's keys are text and numbers stay unambiguous.
    classes = [str(label) for label in model.classes_]
    numbers = pd.to_numeric(y_true, errors="coerce")
    typed = numbers if numbers.notna().all() else y_true
    actual = np.array([str(v) for v in typed], dtype=object)
    predicted = np.array([str(v) for v in predict_in_chunks(model, features)], dtype=object)

    labels = classes + sorted(set(actual) - set(classes))
    counts = confusion_matrix(actual, predicted, labels=labels)
    matrix = {a: {p: int(counts[i, j]) for j, p in enumerate(labels)} for i, a in enumerate(labels)}
    weighted = {"average": "weighted", "zero_division": 0}
    report = {
        "multiclass_classification_metrics": {
            "accuracy": metric(accuracy_score(actual, predicted)),
            "f1_macro": metric(f1_score(actual, predicted, average="macro", zero_division=0)),
            "weighted_f1": metric(f1_score(actual, predicted, **weighted)),
            "weighted_precision": metric(precision_score(actual, predicted, **weighted)),
            "weighted_recall": metric(recall_score(actual, predicted, **weighted)),
            "confusion_matrix": matrix,
        }
    }
    if len(classes) == 2 and set(actual) <= set(classes):
        positive = classes[1]  # model.classes_ is sorted, so this is the second sorted label
        binary = {"pos_label": positive, "average": "binary", "zero_division": 0}
        section = {
            "accuracy": metric(accuracy_score(actual, predicted)),
            "precision": metric(precision_score(actual, predicted, **binary)),
            "recall": metric(recall_score(actual, predicted, **binary)),
            "f1": metric(f1_score(actual, predicted, **binary)),
        }
        if hasattr(model, "predict_proba") and len(set(actual)) == 2:
            scores = predict_in_chunks(model, features, proba=True)[:, 1]
            section["auc"] = metric(roc_auc_score(actual == positive, scores))
        report["binary_classification_metrics"] = section
    return report


def regression_report(y_true: pd.Series, model, features: pd.DataFrame, target: str) -> dict:
    actual = pd.to_numeric(y_true, errors="coerce")
    if actual.isna().any():
        fail(f"'{target}' in the test data has non-numeric values; regression needs numbers.")
    if len(actual) < 2:
        fail("r2 is undefined on fewer than 2 test rows. Use more data or a larger --test-size.")
    predicted = predict_in_chunks(model, features)
    mse = mean_squared_error(actual, predicted)
    return {
        "regression_metrics": {
            "mse": metric(mse),
            "rmse": metric(math.sqrt(mse)),
            "mae": metric(mean_absolute_error(actual, predicted)),
            "r2": metric(r2_score(actual, predicted)),
        }
    }


def model_report(model, metadata: dict, data: pd.DataFrame, features: pd.DataFrame) -> dict:
    """The metrics of one model on the test rows (`features`: as_model_input of them)."""
    target = metadata["target_column"]
    if metadata["problem_type"] == "classification":
        return classification_report(data[target], model, features)
    return regression_report(data[target], model, features, target)


def headline(report: dict) -> str:
    section = report.get("multiclass_classification_metrics") or report["regression_metrics"]
    names = ["accuracy", "f1_macro"] if "accuracy" in section else ["rmse", "mae", "r2"]
    return ", ".join(f"{name} {section[name]['value']:.4f}" for name in names)


# Metrics where a smaller value is better (as the project's config.py says).
LOWER_IS_BETTER = {"rmse", "mae"}


def score(report: dict, metric: str) -> float:
    section = report.get("multiclass_classification_metrics") or report["regression_metrics"]
    if metric not in section:
        fail(f"--metric {metric} is not in this problem's report ({', '.join(section)}).")
    return section[metric]["value"]


def newest_approved(group: str) -> dict | None:
    """The group's newest Approved version (DescribeModelPackage), or None."""
    sagemaker = boto3.client("sagemaker")
    try:
        found = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
        if not found:
            return None
        return sagemaker.describe_model_package(ModelPackageName=found[0]["ModelPackageArn"])
    except (BotoCoreError, ClientError) as error:
        fail(
            f"the model registry could not be read to find the champion of {group} ({error}). "
            "This step's role needs sagemaker:ListModelPackages and DescribeModelPackage."
        )


def load_champion(package: dict, scratch: Path):
    """The champion's model and metadata, from its model.tar.gz in S3."""
    version = package.get("ModelPackageVersion")
    url = package["InferenceSpecification"]["Containers"][0].get("ModelDataUrl", "")
    bucket, _, key = url.removeprefix("s3://").partition("/")
    folder = scratch / "champion"
    folder.mkdir()
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        with open(folder / "model.tar.gz", "wb") as handle:
            for block in iter(lambda: body.read(1 << 20), b""):
                handle.write(block)
    except (BotoCoreError, ClientError, ValueError) as error:
        fail(
            f"the model data of the approved version {version} ({url}) could not be read "
            f"({error}). Restore it, or reject version {version} if it cannot be served."
        )
    return load_model(locate_model(folder, folder / "unpacked"))


def same_schema(champion: dict, challenger: dict, version: object) -> None:
    """Refuse a model whose columns differ from the champion's, naming them."""
    was, now = champion["feature_columns"], challenger["feature_columns"]
    if champion["target_column"] != challenger["target_column"]:
        fail(
            f"the approved version {version} predicts '{champion['target_column']}'; this "
            f"model predicts '{challenger['target_column']}'. Register it in a model package "
            "group of its own."
        )
    if was != now:
        missing = [c for c in was if c not in now]
        added = [c for c in now if c not in was]
        what = "; ".join(
            part
            for part in (
                f"no longer takes {', '.join(missing)}" if missing else "",
                f"takes new column(s) {', '.join(added)}" if added else "",
                "takes the columns in another order" if not (missing or added) else "",
            )
            if part
        )
        fail(
            f"this model {what}, against the approved version {version} "
            f"({', '.join(was)}): callers of the endpoint send the approved version's columns. "
            "Keep the columns, or register the model in a model package group of its own."
        )


def compare(args, challenger: float, champion: float | None, version: object, rows: int) -> dict:
    """The champion_challenger section: what the gate requires, and why, in one sentence."""
    lower = args.metric in LOWER_IS_BETTER
    if champion is None:
        required = challenger
        summary = (
            f"no version of {args.model_package_group} is Approved yet, so the new model's "
            "own score"
        )
    else:
        required = champion - args.margin if lower else champion + args.margin
        summary = (
            f"the approved version {version} scores {args.metric} {champion:.4f} on the same "
            f"{rows} rows (margin {args.margin:g})"
        )
    passed = challenger <= required if lower else challenger >= required
    return {
        "metric": args.metric,
        "challenger": challenger,
        "champion": champion,
        "champion_version": None if champion is None else version,
        "margin": args.margin,
        "lower_is_better": lower,
        "required": required,
        "passed": passed,
        "summary": summary,
    }


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_folder = locate_model(Path(args.model_dir), Path(scratch))
        model, metadata = load_model(model_folder)
    for option, key in (("target_column", "target_column"), ("problem_type", "problem_type")):
        given = getattr(args, option)
        if given is not None and given != metadata[key]:
            fail(
                f"--{option.replace('_', '-')} is '{given}' but the model was trained with "
                f"'{metadata[key]}'. Pass the same value to train and evaluate."
            )
    target = metadata["target_column"]
    group = args.model_package_group
    champion_package = newest_approved(group) if group else None
    with tempfile.TemporaryDirectory() as scratch:
        champion = load_champion(champion_package, Path(scratch)) if champion_package else None
    if champion is not None:
        same_schema(champion[1], metadata, champion_package.get("ModelPackageVersion"))

    data = read_test_data(Path(args.test_dir), metadata)
    features = as_model_input(data, metadata)
    report = model_report(model, metadata, data, features)

    for section in report.values():
        for name, entry in section.items():
            if name != "confusion_matrix" and not math.isfinite(entry["value"]):
                fail(f"{name} came out as {entry['value']}; check the test data for odd values.")

    if args.model_package_group:
        champion_score = None
        if champion is not None:
            champion_model, champion_metadata = champion
            champion_features = as_model_input(data, champion_metadata)
            champion_report = model_report(
                champion_model, champion_metadata, data, champion_features
            )
            champion_score = score(champion_report, args.metric)
        version = champion_package.get("ModelPackageVersion") if champion_package else None
        report["champion_challenger"] = compare(
            args, score(report, args.metric), champion_score, version, len(data)
        )
        print(f"evaluate: champion: {report['champion_challenger']['summary']}")

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    # Row-level results for the run report (residual plot, misclassified rows).
    predicted = predict_in_chunks(model, features)
    rows = pd.DataFrame({"actual": data[target].to_numpy(), "predicted": predicted})
    rows.to_csv(output_dir / "predictions.csv", index=False)
    print(f"evaluate: {len(data)} test rows; {headline(report)}")


if __name__ == "__main__":
    main()
