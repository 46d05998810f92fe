"""Batch transform worker, run by the local runner as ``python _transform_worker.py spec.json``.

It plays the model server of a SageMaker batch transform job: loads the inference handlers
(``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn`` or ``transform_fn``) from the
model's code, splits every input file into records and mini-batches the way SageMaker does,
and writes ``<input file>.out`` files. It runs in its own process so the user's imports
(pandas, scikit-learn...) stay out of the runner.

The result file lists, per input file, the number of input records and output lines.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

TEXT_TYPES = ("text/csv", "application/json", "application/jsonlines", "text/plain")


def _base_type(content_type: str) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _is_text(content_type: str) -> bool:
    base = _base_type(content_type)
    return base in TEXT_TYPES or base.startswith("text/")


# ---------------------------------------------------------------------------- default handlers
def default_model_fn(model_dir: str) -> Any:
    for name in ("model.joblib", "model.pkl", "model.pickle"):
        path = Path(model_dir) / name
        if path.is_file():
            if name.endswith(".joblib"):
                import joblib

                return joblib.load(path)
            with open(path, "rb") as fh:
                return pickle.load(fh)  # noqa: S301 - the project's own model artifact
    raise RuntimeError(
        "The inference code defines no model_fn and the model archive has no "
        f"model.joblib / model.pkl (looked in {model_dir})"
    )


def default_input_fn(input_data: Any, content_type: str) -> Any:
    base = _base_type(content_type)
    if isinstance(input_data, bytes) and _is_text(base):
        input_data = input_data.decode("utf-8")
    if base == "text/csv":
        try:
            import numpy as np

            return np.genfromtxt(io.StringIO(input_data), delimiter=",", ndmin=2)
        except ImportError:
            return [[float(x) for x in line.split(",")] for line in input_data.splitlines() if line]
    if base == "application/json":
        return json.loads(input_data)
    if base == "application/jsonlines":
        return [json.loads(line) for line in input_data.splitlines() if line.strip()]
    if base == "application/x-npy":
        import numpy as np

        return np.load(io.BytesIO(input_data), allow_pickle=False)
    raise ValueError(f"The default input_fn does not support content type {content_type!r}")


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def _tolist(prediction: Any) -> Any:
    return prediction.tolist() if hasattr(prediction, "tolist") else prediction


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    base = _base_type(accept)
    value = _tolist(prediction)
    if base in ("application/json", ""):
        return json.dumps(value)
    if base == "application/jsonlines":
        rows = value if isinstance(value, list) else [value]
        return "\n".join(json.dumps(r) for r in rows)
    if base == "text/csv":
        rows = value if isinstance(value, list) else [value]
        lines = []
        for row in rows:
            if isinstance(row, (list, tuple)):
                lines.append(",".join(str(x) for x in row))
            else:
                lines.append(str(row))
        return "\n".join(lines)
    if base == "application/x-npy":
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, np.asarray(prediction))
        return buf.getvalue()
    raise ValueError(f"The default output_fn does not support accept type {accept!r}")


# ---------------------------------------------------------------------------- handlers
class Handlers:
    def __init__(self, module: ModuleType | None) -> None:
        get = (lambda name: getattr(module, name, None)) if module else (lambda name: None)
        self.model_fn = get("model_fn") or default_model_fn
        self.transform_fn = get("transform_fn")
        self.input_fn = get("input_fn") or default_input_fn
        self.predict_fn = get("predict_fn") or default_predict_fn
        self.output_fn = get("output_fn") or default_output_fn

    def invoke(self, model: Any, payload: Any, content_type: str, accept: str) -> Any:
        if self.transform_fn is not None:
            return self.transform_fn(model, payload, content_type, accept)
        data = self.input_fn(payload, content_type)
        prediction = self.predict_fn(data, model)
        return self.output_fn(prediction, accept)


def load_module(code_dir: str | None, program: str | None) -> ModuleType | None:
    if code_dir:
        sys.path.insert(0, code_dir)
    if not program:
        return None
    path = Path(code_dir or ".") / program
    name = Path(program).stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import inference code {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def response_body(response: Any) -> bytes:
    """The bytes of what a handler returned (str, bytes, (body, type) or a response object)."""
    if isinstance(response, tuple) and len(response) == 2 and isinstance(response[0], (str, bytes)):
        response = response[0]
    if hasattr(response, "get_data") and callable(response.get_data):
        response = response.get_data()
    elif hasattr(response, "body") and isinstance(response.body, (str, bytes)):
        response = response.body
    if isinstance(response, bytes):
        return response
    if isinstance(response, str):
        return response.encode("utf-8")
    if isinstance(response, bytearray):
        return bytes(response)
    return json.dumps(_tolist(response)).encode("utf-8")


# ---------------------------------------------------------------------------- batching
def split_records(data: bytes, split_type: str) -> list[bytes]:
    if split_type != "Line":
        return [data]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def batches(
    records: list[bytes], strategy: str, max_bytes: int, split_type: str
) -> list[list[bytes]]:
    if strategy != "MultiRecord" or split_type != "Line":
        out = [[r] for r in records]
    else:
        out = []
        current: list[bytes] = []
        size = 0
        for rec in records:
            extra = len(rec) + (1 if current else 0)
            if current and max_bytes and size + extra > max_bytes:
                out.append(current)
                current, size = [], 0
                extra = len(rec)
            current.append(rec)
            size += extra
        if current:
            out.append(current)
    if max_bytes:
        for i, batch in enumerate(out):
            if len(batch) == 1 and len(batch[0]) > max_bytes:
                raise ValueError(
                    f"Record {i + 1} is {len(batch[0])} bytes, larger than MaxPayloadInMB "
                    f"({max_bytes} bytes)"
                )
    return out


def _response_lines(body: bytes) -> list[bytes]:
    if body.endswith(b"\r\n"):
        body = body[:-2]
    elif body.endswith(b"\n"):
        body = body[:-1]
    if body == b"":
        return []
    return [line[:-1] if line.endswith(b"\r") else line for line in body.split(b"\n")]


def transform_file(
    spec: dict[str, Any], handlers: Handlers, model: Any, rel: str
) -> dict[str, Any]:
    data = (Path(spec["input_dir"]) / rel).read_bytes()
    split = spec["split_type"]
    records = split_records(data, split)
    groups = batches(records, spec["batch_strategy"], spec["max_payload_bytes"], split)
    ctype, accept = spec["content_type"], spec["accept"]
    join = spec["join_source"] == "Input"
    line_mode = spec["assemble_with"] == "Line"
    out_lines: list[bytes] = []
    chunks: list[bytes] = []
    for n, group in enumerate(groups):
        payload_bytes = b"\n".join(group)
        payload: Any = payload_bytes.decode("utf-8") if _is_text(ctype) else payload_bytes
        body = response_body(handlers.invoke(model, payload, ctype, accept))
        if not line_mode:
            chunks.append(body)
            continue
        lines = _response_lines(body)
        if join:
            if len(lines) != len(group):
                raise ValueError(
                    f"JoinSource Input: request {n + 1} of {rel} sent {len(group)} records but "
                    f"the response has {len(lines)} lines"
                )
            lines = [inp + b"," + out for inp, out in zip(group, lines, strict=True)]
        out_lines.extend(lines)
    out_rel = rel + ".out"
    out_path = Path(spec["output_dir"]) / out_rel
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if line_mode:
        out_path.write_bytes(b"".join(line + b"\n" for line in out_lines))
        n_out = len(out_lines)
    else:
        content = b"".join(chunks)
        out_path.write_bytes(content)
        n_out = len(_response_lines(content))
    return {"file": rel, "output": out_rel, "records": len(records), "output_lines": n_out}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: _transform_worker.py SPEC_JSON", file=sys.stderr)
        return 2
    # Run by path, this file's folder is sys.path[0]: drop it so the runner's modules
    # (store, steps, report...) never shadow the inference code's imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != here]
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    os.environ.setdefault("SAGEMAKER_BATCH", "true")
    module = load_module(spec.get("code_dir"), spec.get("program"))
    handlers = Handlers(module)
    model = handlers.model_fn(spec["model_dir"])
    results = [transform_file(spec, handlers, model, rel) for rel in spec["files"]]
    Path(spec["result_path"]).write_text(json.dumps({"files": results}, indent=2), encoding="utf-8")
    for res in results:
        print(f"{res['file']}: {res['records']} records -> {res['output_lines']} output lines")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception:  # noqa: BLE001 - the runner reports the traceback as the failure
        traceback.print_exc()
        sys.exit(1)
