"""Warm pools: a step's Python process forked from one that has its libraries imported.

A new interpreter of the scikit-learn image spends about 3 s importing pandas, scikit-learn
and SciPy before a step's first line of work; on the sample that is nearly all of a step.
With a warm pool, the first step that runs a script with an image's Python starts a server
for that Python (``_warm_pool_server.py``) and runs in a new process as before; once the
server is up, the steps of this run and of later runs are forked from it and start at once.
The server exits after ``keep_alive`` seconds with no request (the run's setting, default
:data:`DEFAULT_KEEP_ALIVE`; SageMaker's warm pools keep an instance the same way), or when
:func:`stop_warm_pools` asks it to.

What a forked step gets is what a new process gets (see the server's module): exactly its
environment, folder, arguments, ``sys.path[0]``, ``/opt/ml`` mapping, log files, exit codes
and signals, a process group the runner stops and its watchdog kills. What differs: the
libraries were imported before the step's environment was set, so a step whose environment
sets a variable read at import time (``OMP_*``, ``MKL_*``, ``PYTHON*``, ... see
:data:`IMPORT_TIME_VARIABLES`) runs in a new process; and the steps forked from one server
share its string hash seed. Only ``python script.py ...`` commands qualify; the others
(``/bin/sh``, ``-m``) always start a new process.

The servers listen on Unix sockets in a folder only this user can open (and, on Linux,
check that the peer is this user); each is named by a key of everything that shapes it:
its Python and that environment's identity, the server's and the path mapping's code, the
libraries it imports. ``SAGEMAKER_PIPELINES_LOCAL_WARM_POOL`` sets the default keep-alive in
seconds; ``0`` turns warm pools off. Linux only: elsewhere every step starts a new process.
"""

from __future__ import annotations

import array
import functools
import hashlib
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DEFAULT_KEEP_ALIVE",
    "IMPORT_TIME_VARIABLES",
    "WarmPools",
    "WarmProcess",
    "default_keep_alive",
    "stop_warm_pools",
]

SERVER_SCRIPT = Path(__file__).with_name("_warm_pool_server.py")
MAPPING_MODULE = Path(__file__).with_name("_container_paths") / "sitecustomize.py"
DEFAULT_KEEP_ALIVE = 600.0
# SageMaker's warm pools keep an instance at most an hour after its job.
MAX_KEEP_ALIVE = 3600.0
ENV_VARIABLE = "SAGEMAKER_PIPELINES_LOCAL_WARM_POOL"
# What the server imports: the image's libraries that cost a step most of its start.
PRELOAD = (
    "numpy",
    "pandas",
    "scipy.stats",
    "sklearn",
    "sklearn.base",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.preprocessing",
    "joblib",
    "boto3",
    "botocore.session",
)
# Variables a library or the interpreter reads when it is imported or starts: a step whose
# environment differs from the server's in one of them runs in a new process.
IMPORT_TIME_VARIABLES = re.compile(
    r"^(PYTHON|OMP_|MKL_|OPENBLAS_|GOTO|BLIS_|KMP_|NUMEXPR_|NUMBA_|NPY_|NUMPY_|SCIPY_|"
    r"SKLEARN_|PANDAS_|JOBLIB_|LOKY_|LD_|MALLOC|GLIBC_|SAGEMAKER_PIPELINES_LOCAL_WARM|"
    r"LC_|LANG$|LANGUAGE$|TZ$)"  # the locale and time zone an interpreter starts with
)
_START_TIMEOUT = 10.0  # to connect and to learn the child's pid


def default_keep_alive() -> float:
    """The keep-alive from ``SAGEMAKER_PIPELINES_LOCAL_WARM_POOL``, else the default."""
    raw = os.environ.get(ENV_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_KEEP_ALIVE
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_VARIABLE}={raw!r} is not a number of seconds: set it to the seconds a warm "
            f"pool stays up after its last step (0 turns warm pools off, at most "
            f"{MAX_KEEP_ALIVE:g})"
        ) from None
    return check_keep_alive(value, ENV_VARIABLE)


def check_keep_alive(value: float, name: str = "warm_pool") -> float:
    if not 0 <= value <= MAX_KEEP_ALIVE:
        raise ValueError(
            f"{name} must be between 0 (off) and {MAX_KEEP_ALIVE:g} seconds, not {value:g}"
        )
    return float(value)


def _runtime_dir() -> Path | None:
    """A folder for the sockets that only this user can open, or None (no warm pools)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"sagemaker-pipelines-local-{os.getuid()}"
    if len(str(folder)) > 70:  # a socket's path must fit in 107 bytes
        # Checked below: ours, a folder, closed to others.
        folder = Path("/tmp") / f"sagemaker-pipelines-local-{os.getuid()}"  # noqa: S108
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None  # someone else's, or open to others: never trust it
    return folder


def _server_env(python: str) -> dict[str, str]:
    """The environment the server imports in: a step's, without anything of one step."""
    from .processes import _CONTAINER_ENV, _SYSTEM_PATH, CONTAINER_PATHS

    env = dict(_CONTAINER_ENV)
    env["PATH"] = os.pathsep.join([str(Path(python).parent), _SYSTEM_PATH])
    env["HOME"] = str(Path(tempfile.gettempdir()))
    if os.environ.get("TMPDIR"):
        env["TMPDIR"] = os.environ["TMPDIR"]
    env["PYTHONPATH"] = str(CONTAINER_PATHS)
    env["SAGEMAKER_PIPELINES_LOCAL_OPT_ML"] = ""  # wrapped now, mapped per step
    return env


def _import_time(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if IMPORT_TIME_VARIABLES.match(k)}


@functools.cache
def _code_digest() -> str:
    """The server's and the path mapping's code (read once per process)."""
    digest = hashlib.sha256(SERVER_SCRIPT.read_bytes())
    digest.update(MAPPING_MODULE.read_bytes())
    return digest.hexdigest()


def _server_key(python: str, env: Mapping[str, str]) -> str:
    """Everything that shapes a server: a change starts another one."""
    venv = Path(python).parent.parent / "pyvenv.cfg"
    identity = venv if venv.exists() else Path(python)
    info = identity.stat()
    parts = {
        "python": python,
        "identity": [str(identity), info.st_ino, info.st_mtime_ns],
        "code": _code_digest(),
        "preload": list(PRELOAD),
        "env": _import_time(env),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


class WarmProcess:
    """A step's process forked by a warm pool: what :mod:`.processes` uses of a ``Popen``."""

    def __init__(self, conn: socket.socket, pid: int, server_log: Path | None = None) -> None:
        self._conn = conn
        self._buffer = b""
        self.pid = pid
        self.server_log = server_log  # where the server writes what went wrong with it
        self.returncode: int | None = None
        self.lost = False  # the server ended before telling the exit code

    def go(self) -> None:
        """Let the process run its script (once the runner tracks its group)."""
        try:
            self._conn.sendall(b"g")
        except OSError:
            pass  # the server is gone: wait() finds out

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(f"warm pool process {self.pid}", timeout or 0)
            self._conn.settimeout(None if remaining is None else max(remaining, 0.001))
            try:
                chunk = self._conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self._lost()
                return self.returncode  # type: ignore[return-value]
            self._buffer += chunk
        line = self._buffer.split(b"\n", 1)[0]
        try:
            self.returncode = int(json.loads(line)["exit"])
        except (ValueError, KeyError, TypeError):
            self._lost()
            return self.returncode  # type: ignore[return-value]
        self._conn.close()
        return self.returncode

    def _lost(self) -> None:
        """The server died: its child may live on; end it, and fail the step."""
        self.lost = True
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, 9)
            except OSError:
                pass
        self.returncode = -9
        self._conn.close()

    def poll(self) -> int | None:
        try:
            return self.wait(timeout=0.0)
        except subprocess.TimeoutExpired:
            return None


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_START_TIMEOUT)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _request(sock: socket.socket, message: Mapping[str, Any], fds: list[int]) -> None:
    body = json.dumps(message).encode()
    data = struct.pack("!I", len(body)) + body
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    sent = sock.sendmsg([data], ancillary)
    if sent < len(data):
        sock.sendall(data[sent:])


def _read_line(sock: socket.socket) -> dict[str, Any] | None:
    data = b""
    while b"\n" not in data:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    try:
        answer = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


class WarmPools:
    """The warm pools one run uses: starts servers, forks steps from them.

    ``keep_alive`` is how long a server stays up after its last step; 0 turns warm pools
    off (every step starts a new process). ``runtime_dir`` is where the sockets are (tests).
    """

    def __init__(self, keep_alive: float | None = None, runtime_dir: Path | None = None) -> None:
        self.keep_alive = default_keep_alive() if keep_alive is None else keep_alive
        check_keep_alive(self.keep_alive)
        self._runtime_dir = runtime_dir
        self._lock = threading.Lock()
        self._started: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.keep_alive > 0 and sys.platform.startswith("linux")

    def _folder(self) -> Path | None:
        if self._runtime_dir is not None:
            self._runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return self._runtime_dir
        return _runtime_dir()

    def why_not(self, python: str, cmd: list[str], env: Mapping[str, str]) -> str | None:
        """Why ``cmd`` must start a new process, or None when a warm pool may fork it."""
        if not self.enabled:
            return "warm pools are off"
        if len(cmd) < 2 or cmd[0] != python or not cmd[1].endswith(".py"):
            return "not a `python script.py` command"
        if not Path(cmd[1]).is_file():
            return "the script is not a file"
        mine, server = _import_time(env), _import_time(_server_env(python))
        if mine != server:
            names = sorted(k for k in mine.keys() | server.keys() if mine.get(k) != server.get(k))
            return f"its environment sets {', '.join(names)}, read at import time"
        return None

    def start(
        self,
        python: str,
        cmd: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdout: IO[bytes],
        stderr: IO[bytes],
    ) -> WarmProcess | None:
        """Fork ``cmd`` from ``python``'s warm pool; None: start a new process instead.

        The process waits for :meth:`WarmProcess.go`. With no server up yet, one is started
        for the next steps and None is returned.
        """
        if self.why_not(python, cmd, env) is not None:
            return None
        folder = self._folder()
        if folder is None:
            return None
        server_env = _server_env(python)
        key = _server_key(python, server_env)
        sock = _connect(folder / f"{key}.sock")
        if sock is None:
            self._start_server(python, folder, key, server_env)
            return None
        try:
            _request(
                sock,
                {
                    "op": "run",
                    "argv": cmd[1:],
                    "env": dict(env),
                    "cwd": str(cwd),
                    "keep_alive": self.keep_alive,
                },
                [stdout.fileno(), stderr.fileno()],
            )
            answer = _read_line(sock)
        except OSError:
            answer = None
        if not answer or not isinstance(answer.get("pid"), int):
            sock.close()
            return None
        sock.settimeout(None)
        return WarmProcess(sock, answer["pid"], folder / f"{key}.log")

    def _start_server(self, python: str, folder: Path, key: str, env: Mapping[str, str]) -> None:
        with self._lock:
            if key in self._started:
                return  # starting: this run's later steps will find it
            self._started.add(key)
        log = open(folder / f"{key}.log", "ab")  # noqa: SIM115 - the server's own stderr
        try:
            subprocess.Popen(
                [
                    python,
                    str(SERVER_SCRIPT),
                    str(folder / f"{key}.sock"),
                    str(folder / f"{key}.lock"),
                    f"{self.keep_alive:g}",
                    ",".join(PRELOAD),
                ],
                cwd=str(folder),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # outlives the run, as a warm pool does
                close_fds=True,
            )
        except OSError:
            pass  # no warm pool: every step starts a new process
        finally:
            log.close()


def stop_warm_pools(runtime_dir: Path | None = None, *, wait: float = 10.0) -> int:
    """Ask every warm pool server of this user to exit (after its running steps); return
    how many were asked. ``wait``: seconds to wait for their sockets to go."""
    folder = runtime_dir if runtime_dir is not None else _runtime_dir()
    if folder is None or not folder.is_dir():
        return 0
    asked = []
    for path in sorted(folder.glob("*.sock")):
        sock = _connect(path)
        if sock is None:
            try:
                path.unlink()  # a server that died left it
            except OSError:
                pass
            continue
        try:
            _request(sock, {"op": "stop"}, [])
            if _read_line(sock) is not None:
                asked.append(path)
        except OSError:
            pass
        finally:
            sock.close()
    deadline = time.monotonic() + wait
    while any(p.exists() for p in asked) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(asked)
