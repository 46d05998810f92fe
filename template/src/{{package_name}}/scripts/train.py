"""Train a random forest on train.csv and save it together with its serving code.

Runs as the pipeline's training step (inside the SageMaker scikit-learn container) and,
unchanged, as a local subprocess. Follows the container conventions:
  reads   $SM_CHANNEL_TRAIN/train.csv (or the only .csv in that folder)
  writes  $SM_MODEL_DIR/model.joblib     the whole sklearn Pipeline, raw rows in
          $SM_MODEL_DIR/metadata.json    target, problem type, feature columns, classes
          $SM_MODEL_DIR/code/inference.py serving handlers, shipped inside model.tar.gz
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

MAX_TREE_ROWS = 1_000_000


def fail(message: str) -> NoReturn:
    """Stop with a message the user can act on, and no traceback."""
    print(f"train: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def parse_args() -> argparse.Namespace:
    # SageMaker passes hyperparameters as "--key value" strings and may add arguments of its own.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--target-column", "--target_column", dest="target_column", required=True)
    parser.add_argument(
        "--problem-type",
        "--problem_type",
        dest="problem_type",
        required=True,
        choices=["classification", "regression"],
    )
    parser.add_argument("--n-estimators", "--n_estimators", type=int, default=100)
    parser.add_argument("--max-depth", "--max_depth", type=int, default=0)
    parser.add_argument("--min-samples-leaf", "--min_samples_leaf", type=int, default=1)
    parser.add_argument("--random-state", "--random_state", type=int, default=42)
    args, unknown = parser.parse_known_args()
    if unknown:
        print(f"train: ignoring arguments this script does not use: {unknown}", file=sys.stderr)
    if args.n_estimators < 1 or args.min_samples_leaf < 1 or args.max_depth < 0:
        fail(
            "--n-estimators and --min-samples-leaf must be at least 1 and --max-depth at least 0 "
            f"(0 = unlimited); got {args.n_estimators}, {args.min_samples_leaf}, "
            f"{args.max_depth}."
        )
    return args


def find_train_csv(folder: Path) -> Path:
    if not folder.is_dir():
        fail(f"training data folder {folder} does not exist. Set SM_CHANNEL_TRAIN to it.")
    preferred = folder / "train.csv"
    if preferred.is_file():
        return preferred
    csv_files = sorted(folder.glob("*.csv"))
    if len(csv_files) == 1:
        return csv_files[0]
    found = ", ".join(p.name for p in sorted(folder.iterdir())) or "nothing"
    fail(
        f"expected train.csv (or a single .csv) in {folder}, found: {found}. "
        "Run preprocess.py first and pass its train output here."
    )


def read_training_data(path: Path, target: str) -> pd.DataFrame:
    try:
        # Text in, so categorical values keep the exact spelling that serving will receive;
        # as a category, each distinct spelling is stored once (a tenth of the memory of str).
        data = pd.read_csv(path, dtype="category")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        fail(f"{path.name} could not be read as CSV ({error}). Regenerate it with preprocess.py.")
    if target not in data.columns:
        columns = ", ".join(str(c) for c in data.columns)
        fail(
            f"target column '{target}' not found in {path.name}. Columns found: {columns}. "
            "Set the target-column hyperparameter to one of them."
        )
    missing = data[target].isna()
    if missing.any():
        print(
            f"train: warning: dropped {int(missing.sum())} row(s) with an empty '{target}'.",
            file=sys.stderr,
        )
        data = data.loc[~missing].reset_index(drop=True)
    if len(data) == 0:
        fail(f"{path.name} has no rows with a '{target}' value. Check the preprocess output.")
    if data.shape[1] < 2:
        fail(f"{path.name} has no feature columns besides '{target}'. Add feature columns.")
    return data


def all_numbers(values: pd.Series) -> bool:
    present = pd.Series(values.dropna().unique())  # each distinct spelling once
    return len(present) > 0 and bool(pd.to_numeric(present, errors="coerce").notna().all())


def split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Columns whose every value is a number get the median imputer; the rest are one-hot."""
    numeric = [c for c in features.columns if all_numbers(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    return numeric, categorical


def to_text(values: pd.Series) -> pd.Series:
    # str() every value so mixed types encode consistently; missing stays NaN for the imputer.
    text = values.map(str, na_action="ignore").astype(object)
    return text.where(text.notna(), np.nan)


def as_model_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Same cast as inference.py and evaluate.py: each script runs alone in its container."""
    columns = {}
    for column in frame.columns:
        if column in numeric:
            # float32: the forest computes in float32 and would otherwise make its own copy.
            columns[column] = pd.to_numeric(frame[column], errors="coerce").astype("float32")
        elif column in categorical:
            columns[column] = to_text(frame[column])
    return pd.DataFrame(columns, index=frame.index)


def build_pipeline(
    numeric: list[str], categorical: list[str], args: argparse.Namespace, rows: int
) -> Pipeline:
    # One median imputer per numeric column: the same medians, but np.ma.median sorts all of
    # its input at once with int64 indices (~4x the data's size in float32), so a column at a
    # time keeps that to one column.
    steps = [(f"numeric_{i}", SimpleImputer(strategy="median"), [c]) for i, c in enumerate(numeric)]
    if categorical:
        encode = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        steps.append(("categorical", encode, categorical))
    forest_class = (
        RandomForestClassifier if args.problem_type == "classification" else RandomForestRegressor
    )
    forest = forest_class(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth or None,
        min_samples_leaf=args.min_samples_leaf,
        # Each tree draws its bootstrap sample from at most MAX_TREE_ROWS rows: below that,
        # the usual forest; above, memory and time per tree stop growing with the data.
        max_samples=MAX_TREE_ROWS if rows > MAX_TREE_ROWS else None,
        random_state=args.random_state,
        # Every tree being grown holds ~40 bytes per training row (bootstrap weights and
        # counts, row indices: ~220 MB at 5.7M rows), so beyond MAX_TREE_ROWS one tree at a
        # time. The number of threads does not change the trees.
        n_jobs=1 if rows > MAX_TREE_ROWS else -1,
    )
    return Pipeline([("features", ColumnTransformer(steps)), ("model", forest)])


def target_values(values: pd.Series, problem_type: str, target: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    if problem_type == "regression":
        if numbers.isna().any():
            examples = ", ".join(repr(v) for v in values[numbers.isna()].unique()[:3])
            fail(
                f"regression needs a numeric target, but '{target}' has values such as "
                f"{examples}. Use problem type classification or clean the target."
            )
        return numbers.to_numpy(dtype=float)
    if values.nunique() < 2:
        fail(f"classification needs at least 2 classes in '{target}'; found only one.")
    # Fit on the original labels (numbers stay numbers) so predict() returns them unchanged.
    if numbers.notna().all():
        return numbers.to_numpy()
    return values.to_numpy(dtype=object)


def predict_in_chunks(model, matrix: np.ndarray, rows: int = 100_000):
    """predict() a slice of rows at a time: one call on millions of rows holds several copies."""
    parts = [model.predict(matrix[i : i + rows]) for i in range(0, len(matrix), rows)]
    return np.concatenate(parts)


def plain(value):
    """numpy scalars -> Python values so json.dump accepts them."""
    return value.item() if isinstance(value, np.generic) else value


def main() -> None:
    args = parse_args()
    train_dir = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    serving_code = Path(__file__).resolve().parent / "inference.py"
    if not serving_code.is_file():
        fail(
            f"{serving_code} is missing. Ship the whole scripts folder (train.py and "
            "inference.py) as the training source directory."
        )

    train_csv = find_train_csv(train_dir)
    data = read_training_data(train_csv, args.target_column)
    y = target_values(data[args.target_column], args.problem_type, args.target_column)
    raw_features = data.drop(columns=[args.target_column])
    numeric, categorical = split_columns(raw_features)
    features = as_model_input(raw_features, numeric, categorical)
    rows, feature_columns = len(data), list(raw_features.columns)
    del data, raw_features  # the text copy: free its memory for the forest

    pipeline = build_pipeline(numeric, categorical, args, rows)
    # What pipeline.fit(features, y) does, a step at a time, so that the DataFrame can go
    # before the forest grows: the forest then shares memory with one numeric array only.
    matrix = pipeline.named_steps["features"].fit_transform(features, y)
    del features
    forest = pipeline.named_steps["model"]
    forest.fit(matrix, y)
    # Predict on one thread: a forest regressor sums its trees in the order its threads
    # finish, so parallel predictions of the same row differ in the last digits, and batch,
    # endpoint and evaluation would disagree. Training above could use every core.
    forest.set_params(n_jobs=1)
    predicted = predict_in_chunks(forest, matrix)  # the pipeline's predictions on these rows
    del matrix
    if args.problem_type == "classification":
        score = accuracy_score(y, predicted)  # what pipeline.score() computes, in slices
    else:
        score = r2_score(y, predicted)

    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, model_dir / "model.joblib")
    metadata = {
        "target_column": args.target_column,
        "problem_type": args.problem_type,
        "feature_columns": feature_columns,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
    }
    if args.problem_type == "classification":
        metadata["classes"] = [plain(label) for label in pipeline.classes_]
    metadata["sklearn_version"] = sklearn.__version__
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    # The sklearn serving container loads code/inference.py from inside model.tar.gz.
    (model_dir / "code").mkdir(exist_ok=True)
    shutil.copyfile(serving_code, model_dir / "code" / "inference.py")

    score_name = "accuracy" if args.problem_type == "classification" else "r2"
    print(
        f"train: {rows} rows, {len(numeric)} numeric + {len(categorical)} categorical "
        f"features, {args.n_estimators} trees; training {score_name} {score:.4f} "
        f"(on the training rows; see evaluate for held-out metrics)"
    )


if __name__ == "__main__":
    main()
