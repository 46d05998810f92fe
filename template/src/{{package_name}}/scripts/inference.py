"""Serving handlers for the SageMaker scikit-learn container (endpoints and batch transform).

train.py copies this file into the model archive as code/inference.py. The container calls
model_fn once, then input_fn -> predict_fn -> output_fn for every request. Each handler
must keep exactly these parameters: the container counts them to decide how to call it.
Nothing runs at import time.
"""

from __future__ import annotations

import csv
import io
import json
import os

import joblib
import numpy as np
import pandas as pd

CSV = "text/csv"
JSON = "application/json"

# model_fn fills this in: the container calls input_fn without the model, yet it needs the columns.
_LOADED = {}


def model_fn(model_dir):
    """Load the fitted sklearn Pipeline and the metadata describing its input columns."""
    pipeline = joblib.load(os.path.join(model_dir, "model.joblib"))
    with open(os.path.join(model_dir, "metadata.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    _LOADED["metadata"] = metadata
    return {"pipeline": pipeline, "metadata": metadata}


def _metadata():
    if "metadata" not in _LOADED:
        raise RuntimeError(
            "input_fn needs the model's metadata: call model_fn(model_dir) first "
            "(the serving container does this once at start-up)."
        )
    return _LOADED["metadata"]


def _media_type(header):
    """'text/csv; charset=utf-8' -> 'text/csv'."""
    return (header or "").split(";")[0].strip().lower()


def _is_missing(value):
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _listed(names):
    return ", ".join(f"'{name}'" for name in names)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_problem(fields, columns, target, numeric):
    """None when `fields` is a data row; else, for a header line, what differs from the
    model's columns ("" when nothing does). A header names a column, or has text where every
    numeric column has a number."""
    names = [field.strip() for field in fields]
    known = {name.lower() for name in [*columns, target or ""] if name}
    positions = [i for i, column in enumerate(columns) if column in numeric]
    text_for_numbers = (
        len(names) == len(columns)
        and positions
        and all(names[i] and not _is_number(names[i]) for i in positions)
    )
    if not text_for_numbers and not any(name.lower() in known for name in names):
        return None
    if names == columns:
        return ""
    missing = [column for column in columns if column not in names]
    unexpected = [name for name in names if name not in columns]
    twice = sorted({name for name in names if names.count(name) > 1})
    found = [
        f"missing {_listed(missing)}" if missing else "",
        f"unexpected {_listed(unexpected)}" if unexpected else "",
        f"more than once {_listed(twice)}" if twice else "",
    ]
    differs = "; ".join(part for part in found if part) or "the same columns in another order"
    return (
        f"the header line's columns differ from the model's: {differs}. The model expects "
        f"these {len(columns)} columns, in this order: {', '.join(columns)}"
        + (f"; not the target '{target}'" if target else "")
        + ". Send rows with exactly these columns (a header line is optional)."
    )


def _csv_rows(text, columns, target, numeric):
    expected = len(columns)
    rows = []
    reader = csv.reader(io.StringIO(text))
    for fields in reader:
        if not fields:
            continue  # blank line
        if not rows:
            problem = _header_problem(fields, columns, target, numeric)
            if problem:
                raise ValueError(problem)
            if problem == "":
                continue  # a header line is tolerated, although none is expected
        if len(fields) != expected:
            raise ValueError(
                f"expected {expected} fields ({', '.join(columns)}) but got {len(fields)} on "
                f"line {reader.line_num}. Send the feature values only, in this order, "
                "without the target column."
            )
        rows.append(fields)
    return rows


def _json_rows(text, columns, target):
    document = json.loads(text)
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    records = document if isinstance(document, list) else [document]
    rows = []
    for number, record in enumerate(records, start=1):
        if isinstance(record, list):
            if len(record) != len(columns):
                raise ValueError(
                    f"expected {len(columns)} values ({', '.join(columns)}) but got "
                    f"{len(record)} in record {number}."
                )
            rows.append(record)
            continue
        if not isinstance(record, dict):
            raise ValueError(  # noqa: TRY004 - every bad request body is a ValueError here
                f"record {number} is a {type(record).__name__}; send an object keyed by column "
                f"name (such as '{columns[0]}') or a list of such objects."
            )
        unknown = [key for key in record if key not in columns and key != target]
        if unknown:
            raise ValueError(
                f"record {number} has unknown field(s) {', '.join(map(str, unknown))}; "
                f"expected fields: {', '.join(columns)}."
            )
        # Absent fields are missing values: the model imputes them.
        rows.append([record.get(column) for column in columns])
    return rows


def _to_text(values):
    # str() every value so mixed types encode consistently; missing stays NaN for the imputer.
    text = values.map(str, na_action="ignore").astype(object)
    return text.where(text.notna(), np.nan)


def input_fn(request_body, request_content_type):
    """Turn a CSV or JSON request into a DataFrame holding exactly the model's feature columns."""
    if isinstance(request_body, (bytes, bytearray)):
        request_body = request_body.decode("utf-8")
    text = request_body.lstrip("\ufeff")
    content_type = _media_type(request_content_type)
    metadata = _metadata()
    columns = metadata["feature_columns"]
    numeric = set(metadata["numeric_columns"])
    if content_type == CSV:
        rows = _csv_rows(text, columns, metadata.get("target_column"), numeric)
    elif content_type == JSON:
        try:
            rows = _json_rows(text, columns, metadata.get("target_column"))
        except json.JSONDecodeError as error:
            raise ValueError(f"request body is not valid JSON: {error}.") from None
    else:
        raise ValueError(
            f"unsupported content type '{request_content_type}'; send {CSV} (one record per "
            f"line, no header) or {JSON} (an object or a list of objects keyed by column name)."
        )
    if not rows:
        raise ValueError("request body holds no records; send at least one line or object.")

    cleaned = [[np.nan if _is_missing(v) else v for v in row] for row in rows]
    frame = pd.DataFrame(cleaned, columns=columns, dtype=object)
    typed = {}
    for column in columns:
        if column in numeric:
            typed[column] = pd.to_numeric(frame[column], errors="coerce")
        else:
            typed[column] = _to_text(frame[column])
    return pd.DataFrame(typed, columns=columns)


def predict_fn(input_data, model):
    """Predict with the whole Pipeline: raw features in, original labels or numbers out."""
    return model["pipeline"].predict(input_data)


def output_fn(prediction, accept):
    """Serialise predictions; returns (body, content type) so the container sets the header."""
    values = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(prediction).ravel()]
    wanted = [_media_type(part) for part in (accept or "").split(",")]
    if not any(wanted) or "*/*" in wanted or CSV in wanted:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for value in values:
            writer.writerow([value])
        return buffer.getvalue(), CSV
    if JSON in wanted:
        return json.dumps({"predictions": values}), JSON
    raise ValueError(f"unsupported accept type '{accept}'; ask for {CSV} or {JSON}.")
