"""Serving handlers of the SageMaker scikit-learn container: one CSV row in, one number out."""

import json
import os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"text/csv only, not {content_type}")
    text = body.decode() if isinstance(body, bytes) else body
    return [line.split(",") for line in text.splitlines() if line.strip()]


def predict_fn(rows, model):
    return [model["by_sex"].get(row[0], model["overall"]) for row in rows]


def output_fn(predictions, accept):
    return "".join(f"{value:.3f}\n" for value in predictions)
