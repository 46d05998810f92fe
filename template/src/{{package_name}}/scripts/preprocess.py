"""Split a tabular CSV into train, test and batch files.

Runs as the pipeline's processing step (inside the SageMaker scikit-learn container)
and, unchanged, as a local subprocess. Outputs, beneath --output-dir:
  train/train.csv  header + all columns
  test/test.csv    header + all columns
  batch/batch.csv  test rows without the target column and without a header
  fingerprint/fingerprint.json  the input's sha256, rows, columns and their types (the
                   model version records it)
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import json
import math
import re
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

MIN_ROWS = 10
READ_ROWS = 1_000_000  # rows parsed at a time
WRITE_ROWS = 100_000  # rows written at a time
# A line break inside a quoted text value, with the blanks around it.
LINE_BREAK = re.compile(r"[ \t]*(?:\r\n|\r|\n)[ \t]*")


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


def read_csv(path: Path) -> list[pd.DataFrame]:
    check_is_text(path)
    try:
        # Every value as text, so train/test/batch keep the original spelling of values; as
        # a category, each distinct spelling is stored once (a tenth of the memory of str).
        # In slices of rows: parsing a large file in one go peaks at about twice the memory.
        reader = pd.read_csv(path, dtype="category", encoding="utf-8-sig", chunksize=READ_ROWS)
        chunks = list(reader)
    except pd.errors.EmptyDataError:
        fail(f"{path.name} is empty. Expected a header line and data rows.")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(
            f"{path.name} could not be read as CSV ({first_line}). Check that every line "
            "has the same number of comma-separated fields and that text containing commas "
            "is quoted."
        )
    frame = chunks[0]
    if frame.shape[1] < 2:
        fail(
            f"{path.name} has a single column ({', '.join(frame.columns)}). Expected the "
            "target plus at least one feature column separated by commas; if the file uses "
            "';' or tabs, save it as comma-separated."
        )
    return chunks


def read_input(csv_files: list[Path]) -> pd.DataFrame:
    frames = []
    for path in csv_files:
        chunks = read_csv(path)
        header = list(frames[0].columns) if frames else list(chunks[0].columns)
        if list(chunks[0].columns) != header:
            fail(
                f"{path.name} has columns {list(chunks[0].columns)} but {csv_files[0].name} "
                f"has {header}. All .csv files in the input folder must share one header; "
                "remove or fix the odd one."
            )
        frames.extend(chunks)
    if len(frames) == 1:
        return frames[0]
    # Files' and slices' categories differ, and concat would turn such columns into plain
    # str objects.
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


def approximate_mode(class_counts: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """Rows per class in a draw of n_draws: sklearn's rule, ties broken by the same rng calls."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (candidates,) = np.where(remainder == value)
            add_now = min(len(candidates), need_to_add)
            floored[rng.choice(candidates, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def split(data: pd.DataFrame, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions: the rows train_test_split picks for the same seed.

    sklearn's stratified split collects the row numbers in Python lists, one int object per
    row (~400 MiB at 7M rows); the same draws on numpy arrays cost 8 bytes a row.
    """
    if not 0.0 < args.test_size < 1.0:
        fail(f"--test-size must be between 0 and 1 (a fraction of rows), got {args.test_size}.")
    rows = len(data)
    n_test = math.ceil(args.test_size * rows)
    n_train = rows - n_test
    rng = np.random.RandomState(args.random_state)
    if n_train == 0:
        could_not_split(
            f"With n_samples={rows}, test_size={args.test_size} and train_size=None, the "
            "resulting train set will be empty. Adjust any of the aforementioned parameters."
        )
    if args.problem_type == "regression":
        permutation = rng.permutation(rows)
        return permutation[n_test:], permutation[:n_test]
    # Classes numbered in sorted label order, as sklearn numbers the labels.
    labels = data[args.target_column].cat
    codes = labels.reorder_categories(sorted(labels.categories)).cat.codes.to_numpy()
    counts = np.bincount(codes)
    counts = counts[counts > 0]
    for share, n in (("train_size", n_train), ("test_size", n_test)):
        if n < len(counts):
            could_not_split(
                f"The {share} = {n} should be greater or equal to the number of classes = "
                f"{len(counts)}"
            )
    per_class = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    train_counts = approximate_mode(counts, n_train, rng)
    test_counts = approximate_mode(counts - train_counts, n_test, rng)
    train, test = [], []
    for i, rows_of_class in enumerate(per_class):
        shuffled = rows_of_class.take(rng.permutation(len(rows_of_class)))
        train.append(shuffled[: train_counts[i]])
        test.append(shuffled[train_counts[i] : train_counts[i] + test_counts[i]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def could_not_split(reason: str) -> NoReturn:
    # Raised when the test share is too small to hold one row of every class.
    fail(f"could not split the data: {reason}. Add rows or raise --test-size.")


def flatten_line_breaks(data: pd.DataFrame) -> list[str]:
    """Replace each line break inside a text value by a space, in place; return the columns
    that had one. Batch transform splits its input at line breaks (one record per line), so
    a value spanning two lines would shift every later record against its prediction; an
    endpoint's CSV request is one record per line as well. This script runs the same way in
    the account and on this machine, so both train and score the same text."""
    changed = []
    for column in data.columns:
        categories = data[column].cat.categories
        if not categories.astype(str).str.contains(r"[\r\n]", regex=True).any():
            continue
        flat = categories.astype(str).str.replace(LINE_BREAK, " ", regex=True)
        if flat.is_unique:
            data[column] = data[column].cat.rename_categories(flat)
        else:  # two spellings become one: merge their categories
            spelling = pd.Series(flat, index=categories)
            data[column] = data[column].map(spelling).astype("category")
        changed.append(str(column))
    return changed


def column_type(values: pd.Series) -> str:
    """Numeric when every value present is a number, else categorical (train.py's rule),
    applied to each distinct spelling once: the column is read as a category."""
    present = pd.Series(values.cat.categories, dtype=object)
    numbers = pd.to_numeric(present, errors="coerce")
    return "numeric" if len(present) and bool(numbers.notna().all()) else "categorical"


def fingerprint(csv_files: list[Path], data: pd.DataFrame, target: str) -> dict:
    """What identifies the input: its bytes' sha256 (the files' in name order), its rows, and
    its columns with their types; schema_sha256 covers the names and types alone."""
    whole = hashlib.sha256()
    files = []
    for path in csv_files:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                whole.update(block)
        size = path.stat().st_size
        files.append({"name": path.name, "sha256": digest.hexdigest(), "bytes": size})
    columns = [
        {"name": str(c), "type": column_type(data[c]), **({"target": True} if c == target else {})}
        for c in data.columns
    ]
    schema = json.dumps([[c["name"], c["type"]] for c in columns], separators=(",", ":"))
    return {
        "sha256": whole.hexdigest(),
        "files": files,
        "rows": len(data),
        "column_count": len(columns),
        "schema_sha256": hashlib.sha256(schema.encode()).hexdigest(),
        "columns": columns,
    }


def write_csv(data: pd.DataFrame, positions: np.ndarray, path: Path, header: bool) -> None:
    """The given rows, a slice at a time: a copy of the whole selection would double memory."""
    with path.open("w", newline="") as handle:
        for start in range(0, len(positions), WRITE_ROWS):
            part = data.take(positions[start : start + WRITE_ROWS])
            part.to_csv(handle, index=False, header=header and start == 0)


def main() -> None:
    args = parse_args()
    input_dir = Path(args.input_dir)
    csv_files = find_csv_files(input_dir)
    source = csv_files[0].name if len(csv_files) == 1 else f"{len(csv_files)} CSV files"

    data = read_input(csv_files)
    input_fingerprint = fingerprint(csv_files, data, args.target_column)
    data = check_target(data, args.target_column, source)
    check_rows_for_problem(data, args.target_column, args.problem_type)
    flattened = flatten_line_breaks(data)
    if flattened:
        print(
            f"preprocess: line breaks inside the text values of {', '.join(flattened)} became "
            "spaces (batch transform and endpoints read one record per line)"
        )
    train, test = split(data, args)

    output_dir = Path(args.output_dir)
    for name in ("train", "test", "batch", "fingerprint"):
        (output_dir / name).mkdir(parents=True, exist_ok=True)
    text = json.dumps(input_fingerprint, indent=2) + "\n"
    (output_dir / "fingerprint" / "fingerprint.json").write_text(text, encoding="utf-8")
    write_csv(data, train, output_dir / "train" / "train.csv", header=True)
    write_csv(data, test, output_dir / "test" / "test.csv", header=True)
    # Batch transform sends one line per record: features only, no header.
    features = data.drop(columns=[args.target_column])
    write_csv(features, test, output_dir / "batch" / "batch.csv", header=False)

    print(
        f"preprocess: {len(data)} rows from {source} -> train {len(train)}, "
        f"test {len(test)}, batch {len(test)} ({args.problem_type}, target "
        f"'{args.target_column}')"
    )


if __name__ == "__main__":
    main()
