"""The dataset rules: read the CSV a project is rendered from, check it against the answers.

Two callers share these rules, so a CSV is judged the same way wherever it is met:
- the questionnaire (hooks/questions.py, a Jinja extension), while a person answers:
  the target's choices, the problem type's and the threshold's defaults, the messages;
- the render task (`python hooks/dataset.py ...`, copier.yml `_tasks`), which checks the
  answers given with `--data`/`--defaults` and copies the CSV into `data/`.

Standard library only: the task runs with Copier's own Python (`_copier_python`).
A failure of the task exits non-zero; Copier then removes the project it was creating.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MIN_ROWS = 10
SNIFF_BYTES = 64 * 1024
# At most this many distinct whole numbers (and at most one per two rows) read as labels.
MAX_NUMERIC_CLASSES = 20


class DatasetError(Exception):
    """A CSV or an answer that the rules refuse; the message names the question."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class TargetProfile:
    """What the target's values say about the problem, for the questions' defaults."""

    column: str
    values: int  # rows with a value
    distinct: int
    numeric: bool
    problem_type: str
    reason: str
    std: float | None  # rmse of always predicting the mean (population standard deviation)
    mean_abs_dev: float | None  # mae of always predicting the mean


def read_table(path: Path) -> Table:
    """The CSV's header and data rows; DatasetError names what is wrong and what to do."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"dataset_path: '{path}' does not exist or is not a file.") from None
    except IsADirectoryError:
        raise DatasetError(f"dataset_path: '{path}' is a folder; give the CSV file.") from None
    except PermissionError:
        raise DatasetError(f"dataset_path: '{path}' cannot be read (permission denied).") from None
    if not raw.strip():
        raise DatasetError(
            f"dataset_path: '{path}' is empty; give a CSV with a header row and data rows."
        )
    if b"\x00" in raw[:SNIFF_BYTES]:
        raise DatasetError(
            f"dataset_path: '{path}' is a binary file, not a CSV; export the data as CSV."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"dataset_path: '{path}' is not UTF-8 text (byte {error.start}); save the CSV as UTF-8."
        ) from None
    if text.lstrip()[:1] in ("{", "["):
        raise DatasetError(
            f"dataset_path: '{path}' looks like JSON, not CSV; export the data as CSV."
        )
    # newline="" keeps a line break inside a quoted value part of its field.
    try:
        rows = [
            row for row in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in row)
        ]
    except csv.Error as error:
        raise DatasetError(f"dataset_path: '{path}' is not a readable CSV ({error}).") from None
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise DatasetError(
            f"dataset_path: '{path}' has a single column ({header[0]!r}); a CSV needs a comma-"
            "separated header with the target and at least one feature column."
        )
    if "" in header:
        raise DatasetError(
            f"dataset_path: column {header.index('') + 1} of '{path}' has no name; "
            "give every column a name in the header row."
        )
    if len(set(header)) != len(header):
        duplicated = sorted(name for name, n in Counter(header).items() if n > 1)
        raise DatasetError(
            f"dataset_path: '{path}' repeats the column name(s) {', '.join(duplicated)}."
        )
    data = rows[1:]
    if not data:
        raise DatasetError(f"dataset_path: '{path}' has a header but no data rows.")
    for number, row in enumerate(data, start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"dataset_path: record {number} of '{path}' has {len(row)} fields but the "
                f"header has {len(header)}; fix that record or re-export the CSV."
            )
    return Table(header, data)


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def target_name_problem(name: str) -> str:
    """Why SageMaker could not carry `name` as the target_column hyperparameter, or ''.

    SDK v3's training driver writes each hyperparameter into a shell file as
    `export SM_HP_<KEY>='<value>'` and sources it, and both SDKs' container code turn a
    value that parses as JSON into that JSON value before the script sees it.
    """
    if "'" in name:
        return (
            f"'{name}' contains a single quote: SageMaker's training driver writes the target "
            "column between single quotes in a shell file, and the job would die with exit "
            "code 2. Rename the column in the CSV (e.g. without the apostrophe)."
        )
    try:
        parsed = json.loads(name)
    except ValueError:
        return ""
    carried = parsed if isinstance(parsed, str) else json.dumps(parsed)
    if carried != name:
        return (
            f"'{name}' would reach the training script as '{carried}': SageMaker's container "
            "code parses hyperparameter values as JSON. Rename the column in the CSV "
            "(e.g. with a letter in it)."
        )
    return ""


def _floor_significant(value: float, digits: int = 4) -> float:
    """Round towards zero to `digits` significant digits: a threshold just below the value."""
    if value == 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return math.floor(value * scale) / scale


def profile_target(table: Table, target: str) -> TargetProfile:
    """The target's values: the problem type they suggest (and why), the constant baselines."""
    index = table.header.index(target)
    labels = [row[index].strip() for row in table.rows if row[index].strip()]
    distinct = len(set(labels))
    numbers = [_number(label) for label in labels]
    if not labels or any(number is None for number in numbers):
        example = next((label for label, n in zip(labels, numbers, strict=True) if n is None), "")
        reason = (
            f"'{target}' holds text labels ({distinct} distinct values, e.g. {example!r}), "
            "so the default is classification."
        )
        return TargetProfile(target, len(labels), distinct, False, "classification", reason,
                             None, None)  # fmt: skip
    values = [float(n) for n in numbers if n is not None]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    mad = sum(abs(v - mean) for v in values) / len(values)
    whole = all(v.is_integer() for v in values)
    if whole and distinct <= MAX_NUMERIC_CLASSES and distinct * 2 <= len(values):
        problem_type = "classification"
        reason = (
            f"'{target}' holds {distinct} distinct whole numbers in {len(values)} rows: "
            "they read as labels, so the default is classification."
        )
    else:
        problem_type = "regression"
        reason = (
            f"'{target}' holds {distinct} distinct numbers in {len(values)} rows: "
            "a quantity, so the default is regression."
        )
    return TargetProfile(target, len(values), distinct, True, problem_type, reason,
                         _floor_significant(std), _floor_significant(mad))  # fmt: skip


def check_answers(table: Table, target: str, problem_type: str, path: Path) -> list[str]:
    """Check the target and problem type against the data; return warnings, raise refusals."""
    if target not in table.header:
        raise DatasetError(
            f"target_column: '{target}' is not a column of {path.name}; "
            f"the columns are: {', '.join(table.header)}."
        )
    problem = target_name_problem(target)
    if problem:
        raise DatasetError(f"target_column: {problem}")
    index = table.header.index(target)
    labels = [row[index].strip() for row in table.rows if row[index].strip()]
    if len(labels) < MIN_ROWS:
        raise DatasetError(
            f"dataset_path: {path.name} has {len(labels)} rows with a value in '{target}'; "
            f"at least {MIN_ROWS} are needed to train and evaluate."
        )
    if problem_type == "regression":
        bad = [value for value in labels if _number(value) is None]
        if bad:
            raise DatasetError(
                f"problem_type: regression needs a numeric target, but '{target}' holds "
                f"non-numeric values such as {bad[0]!r}; use problem_type=classification."
            )
        if len(set(labels)) < 2:
            raise DatasetError(
                f"target_column: '{target}' has a single value ({labels[0]!r}); nothing to learn."
            )
        return []
    counts = Counter(labels)
    if len(counts) < 2:
        raise DatasetError(
            f"target_column: '{target}' has a single class ({labels[0]!r}); nothing to learn."
        )
    too_small = {label: n for label, n in counts.items() if n < 2}
    if too_small:
        listed = ", ".join(f"{label!r} ({n} row)" for label, n in sorted(too_small.items()))
        raise DatasetError(
            f"target_column: class(es) {listed} of '{target}' have fewer than 2 rows and cannot "
            "be split into train and test; add rows or drop those classes."
        )
    if len(counts) > max(MAX_NUMERIC_CLASSES, len(labels) // 2):
        return [
            f"'{target}' has {len(counts)} distinct values for {len(labels)} rows; "
            "is this really a classification target?"
        ]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset-path", default="")
    parser.add_argument("--sample-file", required=True)
    parser.add_argument("--target-column", required=True)
    parser.add_argument("--problem-type", required=True)
    args = parser.parse_args()

    destination = Path(args.sample_file)
    # No dataset_path: the bundled sample, which the template has just rendered.
    source = Path(args.dataset_path) if args.dataset_path else destination
    try:
        table = read_table(source)
        warnings = check_answers(table, args.target_column, args.problem_type, source)
    except DatasetError as error:
        print(f"\nERROR: {error}\n", file=sys.stderr)
        raise SystemExit(1) from None
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if source.resolve() != destination.resolve():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    print(f"Sample data: {destination} ({len(table.rows)} rows, target '{args.target_column}').")


if __name__ == "__main__":
    main()
