"""Split the abalone CSV: train and test (with rings), batch (test without rings)."""

import argparse
import csv
import glob
import os

parser = argparse.ArgumentParser()
parser.add_argument("--input-dir", required=True)
parser.add_argument("--output-dir", required=True)
args = parser.parse_args()

(path,) = glob.glob(os.path.join(args.input_dir, "*.csv"))
with open(path, newline="") as f:
    rows = list(csv.reader(f))[1:]
splits = {"train": [r for i, r in enumerate(rows) if i % 4], "test": rows[::4]}
splits["batch"] = [r[:-1] for r in splits["test"]]
for name, split in splits.items():
    os.makedirs(os.path.join(args.output_dir, name), exist_ok=True)
    with open(os.path.join(args.output_dir, name, f"{name}.csv"), "w", newline="") as f:
        csv.writer(f).writerows(split)
