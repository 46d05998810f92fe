"""Copier task: check the chosen dataset against the answers, then copy it into the project.

Runs with Copier's own Python (`_copier_python`), so it uses the standard library only.
A failure exits non-zero; Copier then removes the project folder it was creating.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections import Counter
from pathlib import Path

MIN_ROWS = 10
SNIFF_BYTES = 64 * 1024


def fail(message: str) -> None:
    print(f"\nERROR: {message}\n", file=sys.stderr)
    raise SystemExit(1)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    raw = path.read_bytes()
    if not raw.strip():
        fail(f"dataset_path: '{path}' is empty; give a CSV with a header row and data rows.")
    if b"\x00" in raw[:SNIFF_BYTES]:
        fail(f"dataset_path: '{path}' is a binary file, not a CSV; export the data as CSV.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail(f"dataset_path: '{path}' is not UTF-8 text; save the CSV as UTF-8.")
    if text.lstrip()[:1] in ("{", "["):
        fail(f"dataset_path: '{path}' looks like JSON, not CSV; export the data as CSV.")
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        fail(
            f"dataset_path: '{path}' has a single column ({header[0]!r}); a CSV needs a comma-"
            "separated header with the target and at least one feature column."
        )
    if len(set(header)) != len(header):
        duplicated = sorted(name for name, n in Counter(header).items() if n > 1)
        fail(f"dataset_path: '{path}' repeats the column name(s) {', '.join(duplicated)}.")
    data = rows[1:]
    if not data:
        fail(f"dataset_path: '{path}' has a header but no data rows.")
    for number, row in enumerate(data, start=2):
        if len(row) != len(header):
            fail(
                f"dataset_path: line {number} of '{path}' has {len(row)} fields but the header "
                f"has {len(header)}; fix that line or re-export the CSV."
            )
    return header, data


def is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def check(header: list[str], data: list[list[str]], target: str, problem_type: str, path: Path):
    if target not in header:
        fail(
            f"target_column: '{target}' is not a column of {path.name}; "
            f"the columns are: {', '.join(header)}."
        )
    index = header.index(target)
    labels = [row[index].strip() for row in data if row[index].strip()]
    if len(labels) < MIN_ROWS:
        fail(
            f"dataset_path: {path.name} has {len(labels)} rows with a value in '{target}'; "
            f"at least {MIN_ROWS} are needed to train and evaluate."
        )
    if problem_type == "regression":
        bad = [value for value in labels if not is_number(value)]
        if bad:
            fail(
                f"problem_type: regression needs a numeric target, but '{target}' holds "
                f"non-numeric values such as {bad[0]!r}; use problem_type=classification."
            )
        return
    counts = Counter(labels)
    if len(counts) < 2:
        fail(f"target_column: '{target}' has a single class ({labels[0]!r}); nothing to learn.")
    too_small = {label: n for label, n in counts.items() if n < 2}
    if too_small:
        listed = ", ".join(f"{label!r} ({n} row)" for label, n in sorted(too_small.items()))
        fail(
            f"target_column: class(es) {listed} of '{target}' have fewer than 2 rows and cannot "
            "be split into train and test; add rows or drop those classes."
        )
    if len(counts) > max(20, len(labels) // 2):
        print(
            f"WARNING: '{target}' has {len(counts)} distinct values for {len(labels)} rows; "
            "is this really a classification target?",
            file=sys.stderr,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset-path", default="")
    parser.add_argument("--sample-file", required=True)
    parser.add_argument("--target-column", required=True)
    parser.add_argument("--problem-type", required=True)
    args = parser.parse_args()

    destination = Path(args.sample_file)
    if args.dataset_path:
        source = Path(args.dataset_path)
        if not source.is_file():
            fail(f"dataset_path: '{source}' does not exist or is not a file.")
    else:
        source = destination  # the bundled sample, rendered by the template
    header, data = read_csv(source)
    check(header, data, args.target_column, args.problem_type, source)
    if source.resolve() != destination.resolve():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    print(f"Sample data: {destination} ({len(data)} rows, target '{args.target_column}').")


if __name__ == "__main__":
    main()
