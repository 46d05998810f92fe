"""The processes of a step's job: started, watched, stopped, given a container's environment.

A job's process runs in a process group of its own, with the environment a container would
give it and nothing of the host's (:func:`base_env`). :func:`run_process` waits for it,
honours the job's time limit and the execution's stop request; :class:`ProcessTracker`
knows every running process so a stop (Ctrl-C, SIGTERM) ends them all, and a watchdog ends
them if the runner dies without stopping them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .expressions import StepFailure, to_text
from .warmpool import ENV_VARIABLE, WarmProcess

if TYPE_CHECKING:
    from .jobs import StepJob

__all__ = ["ProcessTracker", "StepStopped", "base_env", "last_lines", "run_process"]

WATCHDOG_SCRIPT = Path(__file__).with_name("_watchdog.py")
CONTAINER_PATHS = Path(__file__).with_name("_container_paths")  # its sitecustomize maps /opt/ml


class StepStopped(Exception):
    """The step was stopped (Ctrl-C / execution stop)."""


class ProcessTracker:
    """Subprocesses currently running, so a stop request can terminate them all.

    On POSIX a watchdog process (``_watchdog.py``) learns each step's process group through
    a pipe only the runner holds; if the runner dies without stopping them, the pipe closes
    and the watchdog kills the groups. :meth:`close` ends it when the execution is over.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes] | WarmProcess] = set()
        self._watchdog: subprocess.Popen[bytes] | None = None

    def start_watchdog(self) -> None:
        """Start the watchdog before the first step process, so it knows every group early."""
        if os.name != "posix" or self._watchdog is not None:
            return
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-S", str(WATCHDOG_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is for the runner, not for it
            )
        except OSError:
            pass  # no watchdog: the signal handlers and the parent-death signal remain

    def _tell_watchdog(self, line: str) -> None:
        self.start_watchdog()
        if self._watchdog is None or self._watchdog.stdin is None:
            return
        try:
            self._watchdog.stdin.write(f"{line}\n".encode())
            self._watchdog.stdin.flush()
        except OSError:
            pass

    def add(self, proc: subprocess.Popen[bytes] | WarmProcess) -> None:
        with self._lock:
            self._procs.add(proc)
            self._tell_watchdog(str(proc.pid))

    def remove(self, proc: subprocess.Popen[bytes] | WarmProcess) -> None:
        with self._lock:
            self._procs.discard(proc)
            self._tell_watchdog(f"-{proc.pid}")

    def terminate_all(self) -> None:
        """SIGTERM to every step's process group at once, SIGKILL to those alive 5 s later."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + _GRACE_SECONDS
        for proc in procs:
            _terminate(proc, grace=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """End the watchdog (it kills the groups still listed: none after a finished run)."""
        with self._lock:
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        if watchdog.stdin is not None:
            try:
                watchdog.stdin.close()
            except OSError:
                pass
        try:
            watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()


def last_lines(path: Path, lines: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip()
    except OSError:
        return ""


# How long a step's processes have between SIGTERM and SIGKILL (SageMaker gives a stopped
# job's container 30 s; locally a stop should feel immediate).
_GRACE_SECONDS = 5.0


def _signal_group(proc: subprocess.Popen[bytes] | WarmProcess, sig: signal.Signals) -> None:
    """Signal the step's whole process group (the script and any process it started)."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        elif sig == signal.SIGTERM:
            proc.terminate()
        else:
            proc.kill()
    except OSError:  # ProcessLookupError: already gone; PermissionError: not ours any more
        pass


def _terminate(proc: subprocess.Popen[bytes] | WarmProcess, grace: float = _GRACE_SECONDS) -> None:
    """Stop a step's process group: SIGTERM, then SIGKILL after ``grace`` seconds.

    The group is signalled even when the leader already exited: processes it started may
    still run in the group.
    """
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


# The kernel's parent-death signal: if the runner dies, even by SIGKILL, its step processes
# get SIGKILL (prctl(2), PR_SET_PDEATHSIG). Linux only; elsewhere the process groups and the
# signal handlers of the runner are what stop the steps.
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        # Looked up once here: the child only calls it (no loading between fork and exec).
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when its parent dies.

    The signal fires when the *thread* that forked the child ends, so the child must be
    spawned by a thread that lives as long as it: :func:`run_process` starts and waits for
    the process in the same step thread.
    """
    if _PRCTL is None:
        return None
    prctl = _PRCTL

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # The parent may have died before prctl: then nothing would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(137)

    return preexec


def run_process(
    job: StepJob,
    cmd: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None = None,
    log_name: str = "",
) -> int:
    """Run ``cmd`` with its output in ``<step dir>/stdout.log`` and ``stderr.log``.

    Honours ``timeout`` (StoppingCondition.MaxRuntimeInSeconds) and the stop request.
    """
    prefix = f"{log_name}-" if log_name else ""
    out_path = job.step_dir / f"{prefix}stdout.log"
    err_path = job.step_dir / f"{prefix}stderr.log"
    job.logs[f"{prefix}stdout"] = str(out_path)
    job.logs[f"{prefix}stderr"] = str(err_path)
    (job.step_dir / f"{prefix}command.json").write_text(
        json.dumps({"command": cmd, "cwd": str(cwd)}, indent=2), encoding="utf-8"
    )
    deadline = time.monotonic() + timeout if timeout else None
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        if job.cancel.is_set():
            raise StepStopped("stopped before the job started")
        warm = None
        if job.warm is not None and job.python:
            warm = job.warm.start(job.python, cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        proc: subprocess.Popen[bytes] | WarmProcess
        if warm is not None:
            proc = warm
        else:
            proc = subprocess.Popen(
                cmd,
                cwd=str(cwd),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=(os.name == "posix"),
                preexec_fn=_die_with_parent(os.getpid()),
            )
        job.processes.add(proc)
        if warm is not None:
            warm.go()  # the watchdog knows its group: it may start
        job.process_starts.append("warm pool" if warm is not None else "new process")
        try:
            while True:
                try:
                    rc: int | None = proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    rc = None
                if job.cancel.is_set():
                    # Checked before the exit code: a stop request may be what ended it.
                    _terminate(proc)
                    raise StepStopped("stopped: the job's process was terminated")
                if rc is not None:
                    if isinstance(proc, WarmProcess) and proc.lost:
                        raise StepFailure(
                            f"Step '{job.name}': the warm pool its process was forked from "
                            f"ended before the process did, which was then killed (the pool's "
                            f"log: {proc.server_log}); run again, or with {ENV_VARIABLE}=0 "
                            f"for new processes only. Logs: {err_path}"
                        )
                    return rc
                if deadline is not None and time.monotonic() > deadline:
                    _terminate(proc)
                    raise StepFailure(
                        f"Step '{job.name}' exceeded StoppingCondition.MaxRuntimeInSeconds="
                        f"{timeout:g} (MaxRuntimeExceeded); the process was terminated. "
                        f"Logs: {err_path}"
                    )
        finally:
            job.processes.remove(proc)


# What a container's process starts with: the image's PATH and locale, a HOME of its own
# (so ~/.aws of the host is not found), TMPDIR when the host sets one; then SM_* and the
# step's declared Environment. Nothing else of the host: no credentials, profile or tokens.
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CONTAINER_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def base_env(
    job: StepJob, *extra: Mapping[str, Any] | None, isolated: bool = False
) -> dict[str, str]:
    """The environment of a step's process: what a container would get, nothing of the host;
    `isolated` (network isolation): not even the run's AWS endpoints."""
    home = job.work_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    path = [_SYSTEM_PATH]
    if job.bin_dir is not None:
        path.insert(0, str(job.bin_dir))
    if job.python and job.python != sys.executable:
        path.insert(0, str(Path(job.python).parent))  # the image's venv, as /opt/venv/bin
    env = {**_CONTAINER_ENV, "HOME": str(home), "PATH": os.pathsep.join(path)}
    if os.environ.get("TMPDIR"):
        env["TMPDIR"] = os.environ["TMPDIR"]
    if job.endpoints is not None and not isolated:  # boto3 reaches the run's endpoints only
        env.update(job.endpoints.aws_environment())
    if isolated and job.endpoints is not None:  # the region a container knows, nothing to call
        env.update(AWS_DEFAULT_REGION=job.endpoints.region, AWS_REGION=job.endpoints.region)
    if isolated:  # no instance metadata either: boto3 fails at once, not after a timeout
        env["AWS_EC2_METADATA_DISABLED"] = "true"
    for mapping in extra:
        for key, value in (mapping or {}).items():
            env[str(key)] = to_text(value)
    # A script's absolute /opt/ml/... paths reach this step's own folder (see the module).
    env["SAGEMAKER_PIPELINES_LOCAL_OPT_ML"] = str(job.work_dir / "opt" / "ml")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CONTAINER_PATHS), env.get("PYTHONPATH")]))
    return env
