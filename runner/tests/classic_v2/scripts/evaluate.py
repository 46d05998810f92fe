"""Evaluate: the mean squared error on the test split, in SageMaker's model quality format."""

import argparse
import csv
import json
import os
import tarfile

parser = argparse.ArgumentParser()
parser.add_argument("--model-dir", required=True)
parser.add_argument("--test-dir", required=True)
parser.add_argument("--output-dir", required=True)
args = parser.parse_args()

with tarfile.open(os.path.join(args.model_dir, "model.tar.gz")) as tar:
    model = json.load(tar.extractfile("model.json"))
with open(os.path.join(args.test_dir, "test.csv"), newline="") as f:
    rows = list(csv.reader(f))
errors = [
    (model["by_sex"].get(sex, model["overall"]) - float(rings)) ** 2 for sex, _length, rings in rows
]
os.makedirs(args.output_dir, exist_ok=True)
with open(os.path.join(args.output_dir, "evaluation.json"), "w") as f:
    json.dump({"regression_metrics": {"mse": {"value": sum(errors) / len(errors)}}}, f)
