"""The run records under ``<workdir>/runs/``: who is running them, and the ones left unfinished.

A runner writes ``runs/<execution id>/run.json`` as the execution goes and finishes it when
the execution ends, also after Ctrl-C or SIGTERM. A runner killed outright (SIGKILL, the
out-of-memory killer, a machine that stops) cannot: its record would say ``Executing``
forever. Each record therefore names the runner process that owns it, and
:func:`recover_abandoned_runs` (called by every :func:`~.runner.run_pipeline` and by the
generated project's commands that open the workspace) marks such a record ``Stopped`` once
that process is gone. The step processes died with their runner: on Linux each one gets
SIGKILL from the kernel when the runner dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .records import RunRecord
from .store import write_json_atomic
from .workspace import Workspace

__all__ = ["recover_abandoned_runs", "runner_process"]

EXECUTING, STOPPED, NOT_RUN, PENDING = "Executing", "Stopped", "NotRun", "Pending"


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds_since(start: Any, end: datetime) -> float | None:
    try:
        began = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((end - began).total_seconds(), 3)


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell a reused pid."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def runner_process() -> dict[str, Any]:
    """This process, as a run record names the runner that owns it."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "process_start": _process_start(pid)}


def _is_running(runner: dict[str, Any]) -> bool:
    """Whether the runner process a record names is still alive (a pid reused is not it)."""
    pid = runner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True  # a record without its runner's pid: no way to tell, leave it alone
    if runner.get("host") != socket.gethostname():
        return True  # another machine's run (a shared folder): its runner is not visible here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    recorded, current = runner.get("process_start"), _process_start(pid)
    return recorded is None or current is None or recorded == current


def recover_abandoned_runs(workdir: Workspace | str | os.PathLike[str]) -> list[Path]:
    """Mark ``Stopped`` every record left ``Executing`` by a runner that no longer exists.

    Returns the ``run.json`` files it finished. The report of each is written again.
    """
    workspace = Workspace.of(workdir)
    finished: list[Path] = []
    for execution_id in sorted(workspace.execution_ids()):
        path = workspace.run_record(execution_id)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("status") != EXECUTING:
            continue
        runner = record.get("runner")
        if not isinstance(runner, dict) or _is_running(runner):
            continue
        _finish_abandoned(record, runner, workspace, execution_id)
        finished.append(path)
    return finished


def _finish_abandoned(
    data: dict[str, Any], runner: dict[str, Any], workspace: Workspace, execution_id: str
) -> None:
    record = RunRecord.from_dict({"execution_id": execution_id, **data})
    ended = datetime.now(UTC)
    now = _iso(ended)
    reason = (
        f"The execution was stopped: the runner (process {runner.get('pid')}) was killed before "
        "it could finish this record (SIGKILL, out of memory, or the machine stopped); its step "
        f"processes were stopped with it. Recorded as Stopped at {now}, when a later command "
        "found the runner gone."
    )
    record.status = STOPPED
    record.failure_reason = reason
    record.end_time = now
    record.duration_seconds = _seconds_since(record.start_time, ended)
    for step in record.steps:
        if step.status == EXECUTING:
            step.status = STOPPED
            step.end_time = now
            step.duration_seconds = _seconds_since(step.start_time, ended)
            step.failure_reason = "stopped: the runner was killed while this step ran"
        elif step.status == PENDING:
            step.status = NOT_RUN
            step.not_run_reason = "not started: the runner was killed"
    finished = record.to_dict()
    write_json_atomic(workspace.run_record(execution_id), finished)
    shutil.rmtree(workspace.run_bin_dir(execution_id), ignore_errors=True)  # python links
    try:
        from .report import write_report
        from .store import LocalObjectStore

        write_report(finished, workspace.run_report(execution_id), LocalObjectStore(workspace))
    except Exception as exc:  # noqa: BLE001 - the record matters more than the report
        workspace.run_report_error(execution_id).write_text(
            f"The HTML report could not be written: {exc}\n", encoding="utf-8"
        )
