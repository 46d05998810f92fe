"""A model's serving container, run by the runner as ``python _serving_worker.py spec.json``.

It keeps the contract of SageMaker's inference containers on 127.0.0.1: ``GET /ping``
answers 200 once the model is loaded, ``POST /invocations`` passes the body to the model's
handlers (``input_fn``, ``predict_fn``, ``output_fn`` or ``transform_fn``, else the
defaults) and returns what they produce. As in the scikit-learn image, an error raised by a
handler is logged with its traceback and answered with the server framework's HTML page
for a 500; the message is only in the log. The handlers are the batch transform worker's,
so a model serves exactly as it transforms.

When the model is loaded and the socket listens, the port is written to the spec's
``ready_path``. Standard library only: it runs in the image's Python environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# What the scikit-learn image's server framework answers when a handler raises.
ERROR_PAGE = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was "
    b"unable to complete your request. Either the server is overloaded or there is an error "
    b"in the application.</p>\n"
)


def _load_transform_worker() -> Any:
    """The batch transform worker beside this file, loaded under a private name."""
    path = Path(__file__).with_name("_transform_worker.py")
    spec = importlib.util.spec_from_file_location("_sagemaker_pipelines_local_worker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _response(worker: Any, result: Any, accept: str) -> tuple[bytes, str]:
    """The body and content type of what a handler returned."""
    content_type = accept
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        content_type = result[1]
    elif isinstance(getattr(result, "mimetype", None), str):
        content_type = result.mimetype
    return worker.response_body(result), content_type


def make_handler(worker: Any, handlers: Any, model: Any, default_accept: str) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path.split("?")[0] == "/ping":
                self._send(200, b"", "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/invocations":
                self._send(404, b"not found", "text/plain")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type") or "application/json"
            accept = self.headers.get("Accept") or ""
            if accept in ("", "*/*"):
                accept = default_accept
            payload: Any = body.decode("utf-8") if worker._is_text(content_type) else body
            try:
                result = handlers.invoke(model, payload, content_type, accept)
                out, out_type = _response(worker, result, accept)
            except Exception:  # noqa: BLE001 - logged, and a 500 as the container answers
                traceback.print_exc()
                sys.stderr.flush()
                self._send(500, ERROR_PAGE, "text/html; charset=utf-8")
                return
            self._send(200, out, out_type)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: _serving_worker.py SPEC_JSON", file=sys.stderr)
        return 2
    # Run by path, this file's folder is sys.path[0]: drop it so the runner's modules never
    # shadow the inference code's imports.
    here = Path(__file__).resolve().parent
    worker = _load_transform_worker()
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != here]
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    module = worker.load_module(spec.get("code_dir"), spec.get("program"))
    handlers = worker.Handlers(module)
    model = handlers.model_fn(spec["model_dir"])
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json"
    server = ThreadingHTTPServer(
        ("127.0.0.1", int(spec.get("port") or 0)),
        make_handler(worker, handlers, model, default_accept),
    )
    ready = Path(spec["ready_path"])
    scratch = ready.with_name(ready.name + ".tmp")
    scratch.write_text(json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
    os.replace(scratch, ready)
    print(f"serving on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception:  # noqa: BLE001 - the runner reports the traceback as the failure
        traceback.print_exc()
        sys.exit(1)
