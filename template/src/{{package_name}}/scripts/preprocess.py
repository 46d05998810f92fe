"""Split a tabular CSV into train, test and batch files.

Runs as the pipeline's processing step (inside the SageMaker scikit-learn container)
and, unchanged, as a local subprocess. Outputs, beneath --output-dir:
  train/train.csv  header + all columns
  test/test.csv    header + all columns
  batch/batch.csv  test rows without the target column and without a header
"""

from __future__ import annotations

import argparse
import codecs
import sys
from pathlib import Path
from typing import NoReturn

import pandas as pd
from pandas.api.types import union_categoricals
from sklearn.model_selection import train_test_split

MIN_ROWS = 10


def fail(message: str) -> NoReturn:
    """Stop with a message the user can act on, and no traceback."""
    print(f"preprocess: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="/opt/ml/processing/input")
    parser.add_argument("--output-dir", default="/opt/ml/processing/output")
    parser.add_argument("--target-column", required=True)
    parser.add_argument("--problem-type", required=True, choices=["classification", "regression"])
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--random-state", type=int, default=42)
    return parser.parse_args()


def find_csv_files(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        fail(f"input folder {input_dir} does not exist. Point --input-dir at the data folder.")
    found = sorted(p for p in input_dir.iterdir() if p.is_file())
    csv_files = [p for p in found if p.suffix.lower() == ".csv"]
    if not csv_files:
        names = ", ".join(p.name for p in found) or "nothing"
        fail(
            f"expected a .csv file in {input_dir}, found: {names}. "
            "Upload the data as a comma-separated file with a .csv extension."
        )
    return csv_files


def check_is_text(path: Path) -> None:
    """Reject binary files and JSON before pandas produces a confusing parse."""
    with path.open("rb") as handle:
        head = handle.read(65536)
    if not head.strip():
        fail(f"{path.name} is empty. Expected a header line and data rows.")
    # An incremental decoder tolerates a multi-byte character cut at the end of the sample.
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        fail(
            f"{path.name} is not a text CSV file (it looks binary, e.g. an image or a "
            "spreadsheet). Export the data as UTF-8 comma-separated values (.csv)."
        )
    if text.lstrip()[:1] in ("{", "["):
        fail(
            f"{path.name} looks like JSON, not CSV. Convert it to comma-separated values "
            "with a header line (e.g. pandas.read_json(...).to_csv(..., index=False))."
        )


def read_csv(path: Path) -> pd.DataFrame:
    check_is_text(path)
    try:
        # Every value as text, so train/test/batch keep the original spelling of values; as
        # a category, each distinct spelling is stored once (a tenth of the memory of str).
        frame = pd.read_csv(path, dtype="category", encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        fail(f"{path.name} is empty. Expected a header line and data rows.")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(
            f"{path.name} could not be read as CSV ({first_line}). Check that every line "
            "has the same number of comma-separated fields and that text containing commas "
            "is quoted."
        )
    if frame.shape[1] < 2:
        fail(
            f"{path.name} has a single column ({', '.join(frame.columns)}). Expected the "
            "target plus at least one feature column separated by commas; if the file uses "
            "';' or tabs, save it as comma-separated."
        )
    return frame


def read_input(csv_files: list[Path]) -> pd.DataFrame:
    frames = []
    for path in csv_files:
        frame = read_csv(path)
        header = list(frames[0].columns) if frames else list(frame.columns)
        if list(frame.columns) != header:
            fail(
                f"{path.name} has columns {list(frame.columns)} but {csv_files[0].name} has "
                f"{header}. All .csv files in the input folder must share one header; "
                "remove or fix the odd one."
            )
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    # Files' categories differ, and concat would turn such columns into plain str objects.
    return pd.DataFrame(
        {
            c: union_categoricals([f[c] for f in frames], ignore_order=True)
            for c in frames[0].columns
        }
    )


def check_target(data: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    if len(data) == 0:
        fail(f"{source} has a header but no data rows. Add rows below the header line.")
    if target not in data.columns:
        columns = ", ".join(str(c) for c in data.columns)
        hint = ""
        close = [c for c in data.columns if str(c).strip().lower() == target.strip().lower()]
        if close:
            hint = f" Did you mean '{close[0]}'?"
        fail(
            f"target column '{target}' not found in {source}. Columns found: {columns}.{hint} "
            "Set --target-column to one of them (names are case-sensitive)."
        )
    missing = data[target].isna()
    if missing.all():
        fail(
            f"target column '{target}' is empty in every row of {source}. "
            "Fill in the target values or choose another --target-column."
        )
    if missing.any():
        print(
            f"preprocess: warning: dropped {int(missing.sum())} row(s) with an empty "
            f"'{target}' value.",
            file=sys.stderr,
        )
        data = data.loc[~missing].reset_index(drop=True)
    return data


def check_rows_for_problem(data: pd.DataFrame, target: str, problem_type: str) -> None:
    if len(data) < MIN_ROWS:
        fail(
            f"only {len(data)} row(s) with a target value; at least {MIN_ROWS} are needed to "
            "split into train and test sets. Add more rows."
        )
    if problem_type == "regression":
        numbers = pd.to_numeric(data[target], errors="coerce")
        bad = data.loc[numbers.isna(), target]
        if len(bad):
            examples = ", ".join(repr(v) for v in bad.unique()[:3])
            fail(
                f"regression needs a numeric target, but '{target}' has non-numeric values "
                f"such as {examples}. Clean those values, or use --problem-type "
                "classification if the target is a category."
            )
        return
    counts = data[target].value_counts()
    if len(counts) < 2:
        fail(
            f"classification needs at least 2 classes, but '{target}' only has "
            f"'{counts.index[0]}'. Add rows of other classes or check --target-column."
        )
    rare = counts[counts < 2]
    if len(rare):
        listed = ", ".join(f"'{label}' ({count} row)" for label, count in rare.items())
        fail(
            f"class(es) {listed} of '{target}' have fewer than 2 rows, so the data cannot be "
            "split with every class in train and test. Add rows for those classes or drop "
            "them from the data."
        )


def split(data: pd.DataFrame, args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not 0.0 < args.test_size < 1.0:
        fail(f"--test-size must be between 0 and 1 (a fraction of rows), got {args.test_size}.")
    stratify = None
    if args.problem_type == "classification":
        # The labels' codes, numbered in sorted label order as sklearn numbers the labels: the
        # same split, without an array of one Python string per row.
        labels = data[args.target_column].cat
        stratify = labels.reorder_categories(sorted(labels.categories)).cat.codes
    try:
        train, test = train_test_split(
            data, test_size=args.test_size, random_state=args.random_state, stratify=stratify
        )
    except ValueError as error:
        # Raised when the test share is too small to hold one row of every class.
        fail(f"could not split the data: {error}. Add rows or raise --test-size.")
    return train, test


def main() -> None:
    args = parse_args()
    input_dir = Path(args.input_dir)
    csv_files = find_csv_files(input_dir)
    source = csv_files[0].name if len(csv_files) == 1 else f"{len(csv_files)} CSV files"

    data = read_input(csv_files)
    data = check_target(data, args.target_column, source)
    check_rows_for_problem(data, args.target_column, args.problem_type)
    train, test = split(data, args)

    output_dir = Path(args.output_dir)
    for name in ("train", "test", "batch"):
        (output_dir / name).mkdir(parents=True, exist_ok=True)
    train.to_csv(output_dir / "train" / "train.csv", index=False)
    test.to_csv(output_dir / "test" / "test.csv", index=False)
    # Batch transform sends one line per record: features only, no header.
    batch = test.drop(columns=[args.target_column])
    batch.to_csv(output_dir / "batch" / "batch.csv", index=False, header=False)

    print(
        f"preprocess: {len(data)} rows from {source} -> train {len(train)}, "
        f"test {len(test)}, batch {len(batch)} ({args.problem_type}, target "
        f"'{args.target_column}')"
    )


if __name__ == "__main__":
    main()
