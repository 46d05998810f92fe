"""Real-time endpoints on this machine: a model's serving container, and SageMaker Runtime.

:class:`ModelServer` runs one model the way its inference container does (``GET /ping``,
``POST /invocations``, the model's own handlers) in a process of its own, with the Python
of the model's image and a container's environment. :class:`RuntimeAPI` answers
SageMaker Runtime's ``InvokeEndpoint`` over HTTP for the endpoints it is given, so
boto3's ``sagemaker-runtime`` client reaches them through an endpoint override
(``endpoint_url=`` or ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``): the same client code works
here and in the account. A model's error reaches the caller as SageMaker Runtime reports
it: a ``ModelError`` naming the container's status and body.
"""

from __future__ import annotations

import email.utils
import html
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .processes import CONTAINER_PATHS, _die_with_parent, _terminate

__all__ = [
    "APIError",
    "InvocationResult",
    "ModelServer",
    "RuntimeAPI",
    "ServingError",
    "ServingSpec",
    "request_model_server",
]

SERVING_SCRIPT = Path(__file__).with_name("_serving_worker.py")

# A single byte range of GetObject (what s3transfer asks for a large download).
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

# SageMaker Runtime's limit on a request's body (InvokeEndpoint: 6 MB).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ServingError(Exception):
    """The model server could not start; the message says why and where its log is."""


@dataclass(frozen=True)
class ServingSpec:
    """What a model server needs: the unpacked model, its code, its Python, its environment."""

    model_dir: Path
    python: str = sys.executable
    code_dir: Path | None = None
    program: str | None = None  # SAGEMAKER_PROGRAM, e.g. inference.py
    environment: Mapping[str, str] = field(default_factory=dict)  # the model's Environment


@dataclass(frozen=True)
class InvocationResult:
    """What the container answered to one ``POST /invocations``."""

    status: int
    content_type: str
    body: bytes


class ModelServer:
    """One model's serving container on ``127.0.0.1:port`` (0: a free port), in its own
    process group. The process is started and waited for by a thread of this object, so the
    kernel's parent-death signal ties it to this process's life, not to a caller's thread.
    """

    def __init__(
        self,
        spec: ServingSpec,
        *,
        log_dir: str | os.PathLike[str],
        port: int = 0,
        startup_timeout: float = 120.0,
    ) -> None:
        self.spec = spec
        self.log_dir = Path(log_dir)
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServingError("the model server is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_log(self) -> Path:
        return self.log_dir / "serving-stderr.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the server and wait until it answers ``/ping`` (or fail, naming its log)."""
        if self._thread is not None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._keep, name="model-server", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise ServingError(str(self._start_error)) from self._start_error

    def stop(self) -> None:
        """End the server's process group (SIGTERM, then SIGKILL); safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.port = None

    def _keep(self) -> None:
        ready = self.log_dir / "serving-ready.json"
        ready.unlink(missing_ok=True)
        spec_path = self.log_dir / "serving-spec.json"
        spec_path.write_text(
            json.dumps(
                {
                    "model_dir": str(self.spec.model_dir),
                    "code_dir": str(self.spec.code_dir) if self.spec.code_dir else None,
                    "program": self.spec.program,
                    "port": self.requested_port,
                    "ready_path": str(ready),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        try:
            with (
                open(self.log_dir / "serving-stdout.log", "wb") as out,
                open(self.stderr_log, "wb") as err,
            ):
                proc = subprocess.Popen(
                    [self.spec.python, str(SERVING_SCRIPT), str(spec_path)],
                    cwd=str(self.spec.code_dir or self.spec.model_dir),
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=(os.name == "posix"),
                    preexec_fn=_die_with_parent(os.getpid()),
                )
        except OSError as exc:
            self._start_error = exc
            self._started.set()
            return
        self._proc = proc
        try:
            self._wait_until_ready(proc, ready)
        except ServingError as exc:
            self._start_error = exc
            _terminate(proc)
            self._started.set()
            return
        self._started.set()
        while not self._stop.is_set() and proc.poll() is None:
            self._stop.wait(0.2)
        _terminate(proc)

    def _wait_until_ready(self, proc: subprocess.Popen[bytes], ready: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise ServingError("stopped before the model server was ready")
            if proc.poll() is not None:
                raise ServingError(
                    f"the model server exited with code {proc.returncode} before it was ready "
                    f"(loading the model or its inference code failed). Its log, "
                    f"{self.stderr_log}, ends with:\n{_tail(self.stderr_log)}"
                )
            if ready.is_file():
                self.port = int(json.loads(ready.read_text())["port"])
                if self._ping():
                    return
            time.sleep(0.05)
        raise ServingError(
            f"the model server did not answer /ping within {self.startup_timeout:g} s; "
            f"its log: {self.stderr_log}"
        )

    def _ping(self) -> bool:
        try:
            return self._request("GET", "/ping", b"", {}, timeout=5).status == 200
        except OSError:
            return False

    def _request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> InvocationResult:
        if self.port is None:
            raise ServingError("the model server is not running")
        return request_model_server(self.port, method, path, body, headers, timeout)

    def _environment(self) -> dict[str, str]:
        """What the serving container's process gets: nothing of the host's environment."""
        home = self.log_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        path = [_SYSTEM_PATH]
        if self.spec.python != sys.executable:
            path.insert(0, str(Path(self.spec.python).parent))
        env = {
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(home),
            "PATH": os.pathsep.join(path),
            "SM_MODEL_DIR": str(self.spec.model_dir),
            "SAGEMAKER_PIPELINES_LOCAL_OPT_ML": str(self.log_dir / "opt" / "ml"),
            "PYTHONPATH": str(CONTAINER_PATHS),
        }
        if os.environ.get("TMPDIR"):
            env["TMPDIR"] = os.environ["TMPDIR"]
        env.update({str(k): str(v) for k, v in self.spec.environment.items()})
        return env

    # ------------------------------------------------------------------ requests
    def invoke(
        self, body: bytes, content_type: str = "text/csv", accept: str = "", timeout: float = 60.0
    ) -> InvocationResult:
        """``POST /invocations`` with `body`: whatever the container answers, errors included."""
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        return self._request("POST", "/invocations", body, headers, timeout)


def request_model_server(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> InvocationResult:
    """One request to a model server listening on ``127.0.0.1:port`` (a :class:`ModelServer`
    of this process or of another one): whatever it answers, errors included."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return InvocationResult(
            response.status, response.getheader("Content-Type", ""), response.read()
        )
    finally:
        connection.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------- the runtime API
_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")


class APIError(Exception):
    """An error answer of the local SageMaker API, in the service's words."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class RuntimeAPI:
    """SageMaker Runtime's ``InvokeEndpoint`` on ``127.0.0.1:port`` for local endpoints.

    `resolve(name)` gives the :class:`ModelServer` of an endpoint, or None when there is no
    such endpoint. Requests are checked as the service checks them (a body of at most
    6 MB); the container's answer comes back as the service returns it: its body and
    content type on a 2xx, else a ``ModelError`` (HTTP 424) with the container's status and
    body, as boto3 raises it.

    With `control`, the same address also answers SageMaker's own API (JSON 1.1, as boto3's
    ``sagemaker`` client sends it): ``control(operation, request)`` returns the response, or
    raises :class:`APIError`; an operation it does not know is answered as not emulated.

    With `objects`, it also answers S3's reads (``GetObject``, with a byte range, and
    ``HeadObject``, path-style as boto3 addresses an IP endpoint): ``objects(bucket, key)``
    gives the object's file, or None when there is no such object. Writes are refused: a
    step writes its outputs to its output folders, as in a container.
    """

    def __init__(
        self,
        resolve: Callable[[str], ModelServer | None],
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        port: int = 0,
        control: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
        objects: Callable[[str, str], Path | None] | None = None,
    ) -> None:
        self.resolve = resolve
        self.control = control
        self.objects = objects
        self.region = region
        self.account_id = account_id
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint override for boto3 (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RuntimeAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # shutdown() waits for one poll
                name="runtime-api",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def _log_stream(self, endpoint: str) -> str:
        return (
            f"arn:aws:logs:{self.region}:{self.account_id}:log-group:"
            f"/aws/sagemaker/Endpoints/{endpoint}"
        )

    def _handler(self) -> type:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, **extra: Any) -> None:
                body = json.dumps({"__type": code, "Message": message, **extra}).encode()
                headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
                self._send(status, body, headers)

            def _control(self, target: str, body: bytes) -> None:
                service, _, operation = target.partition(".")
                try:
                    if api.control is None or service != "SageMaker":
                        raise APIError(
                            "UnknownOperationException",
                            f"{target} is not emulated by the local runner",
                        )
                    request = json.loads(body or b"{}")
                    response = api.control(operation, request)
                except APIError as error:
                    self._error(error.status, error.code, error.message)
                    return
                except ValueError as error:
                    self._error(400, "SerializationException", str(error))
                    return
                out = json.dumps(response, default=str).encode()
                self._send(200, out, {"Content-Type": "application/x-amz-json-1.1"})

            def _s3_error(self, status: int, code: str, message: str, key: str = "") -> None:
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{html.escape(message)}</Message>"
                    f"<Key>{html.escape(key)}</Key></Error>"
                ).encode()
                if self.command == "HEAD":  # a HEAD answer has no body, only the status
                    body = b""
                self._send(status, body, {"Content-Type": "application/xml"})

            def _object(self) -> tuple[Path, str] | None:
                """The file and key of the object a GET or HEAD names, else None (answered)."""
                path = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
                bucket, _, key = path.partition("/")
                if api.objects is None or not bucket or not key:
                    self._s3_error(
                        501, "NotImplemented", "the local runner answers GetObject and HeadObject"
                    )
                    return None
                path = api.objects(bucket, key)
                if path is None or not path.is_file():
                    self._s3_error(404, "NoSuchKey", "The specified key does not exist.", key)
                    return None
                return path, key

            def _object_headers(self, path: Path, size: int) -> dict[str, str]:
                stat = path.stat()
                return {
                    "Content-Type": "application/octet-stream",
                    "Accept-Ranges": "bytes",
                    "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
                    "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
                    "Content-Length": str(size),
                }

            def do_HEAD(self) -> None:  # noqa: N802
                found = self._object()
                if found is not None:
                    path = found[0]
                    self.send_response(200)
                    for name, value in self._object_headers(path, path.stat().st_size).items():
                        self.send_header(name, value)
                    self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                found = self._object()
                if found is None:
                    return
                path, key = found
                data = path.read_bytes()
                wanted = _RANGE.fullmatch(self.headers.get("Range") or "")
                if wanted is None:
                    headers = self._object_headers(path, len(data))
                    headers.pop("Content-Length")
                    self._send(200, data, headers)
                    return
                start, end = wanted.groups()
                if start:
                    first, last = int(start), min(int(end or len(data) - 1), len(data) - 1)
                else:  # bytes=-N: the last N bytes
                    first, last = max(len(data) - int(end or 0), 0), len(data) - 1
                if first > last:
                    self._s3_error(
                        416, "InvalidRange", "The requested range is not satisfiable", key
                    )
                    return
                headers = self._object_headers(path, last - first + 1)
                headers.pop("Content-Length")
                headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
                self._send(206, data[first : last + 1], headers)

            def do_PUT(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._s3_error(
                    501,
                    "NotImplemented",
                    "the local runner's S3 answers reads only: a step writes its outputs to its "
                    "output folders",
                )

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                match = _INVOCATIONS.match(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                target = self.headers.get("X-Amz-Target")
                if target and self.path.split("?")[0] == "/":
                    self._control(target, body)
                    return
                if match is None:
                    self._error(404, "UnknownOperationException", f"no operation at {self.path}")
                    return
                name = urllib.parse.unquote(match.group(1))
                if length > MAX_PAYLOAD_BYTES:
                    self._error(
                        400,
                        "ValidationError",
                        f"Request body of {length} bytes exceeds the maximum of "
                        f"{MAX_PAYLOAD_BYTES} bytes for InvokeEndpoint.",
                    )
                    return
                server = api.resolve(name)
                if server is None:
                    self._error(
                        400,
                        "ValidationError",
                        f"Endpoint {name} of account {api.account_id} not found.",
                    )
                    return
                content_type = self.headers.get("Content-Type") or "application/octet-stream"
                accept = self.headers.get("Accept") or ""
                try:
                    result = server.invoke(body, content_type, accept)
                except (OSError, ServingError) as exc:
                    self._error(503, "ServiceUnavailable", f"Endpoint {name} is not serving: {exc}")
                    return
                if 200 <= result.status < 300:
                    self._send(
                        200,
                        result.body,
                        {
                            "Content-Type": result.content_type or "application/octet-stream",
                            "x-Amzn-Invoked-Production-Variant": "AllTraffic",
                        },
                    )
                    return
                kind = "client" if result.status < 500 else "server"
                original = result.body.decode("utf-8", errors="replace")
                log_stream = api._log_stream(name)
                self._error(
                    424,
                    "ModelError",
                    f"Received {kind} error ({result.status}) from primary with message "
                    f'"{original}". See the model server\'s log, {server.stderr_log}, for '
                    "more information.",
                    OriginalStatusCode=result.status,
                    OriginalMessage=original,
                    LogStreamArn=log_stream,
                )

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # each request is in the model server's own log

        return Handler
