"""Signals sent to a real runner process in the middle of a step: no step process survives.

The runner runs in a child process (``RUNNER`` below: what a ``run-local`` command does). Its
one step starts a child of its own, writes both pids, then sleeps; the test signals the
runner once both pids are written, and waits on conditions (files, pids) with generous
deadlines, never on a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sagemaker_pipelines_local import LocalObjectStore, recover_abandoned_runs
from sagemaker_pipelines_local.warmpool import WarmPools
from test_runner import make_definition, processing_step, put_script
from test_warm_pool import _warm_up

DEADLINE = 120.0  # seconds: a loaded 2-core machine starts Python slowly

# The step: start a grandchild, write both pids, sleep (longer than any deadline of the
# test, so only a stop ends them), write a marker if never stopped.
STEP_SCRIPT = """
import os, subprocess, sys, time
from pathlib import Path
out = Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
(out / "parent").write_text(str(os.getppid()))
(out / "pids.tmp").write_text(f"{os.getpid()} {child.pid}")
(out / "pids.tmp").rename(out / "pids")
time.sleep(600)
(out / "slept-to-the-end").touch()
"""

# What `run-local` does: run the definition, exit 0 / 1 / 130 (Stopped).
RUNNER = """
import json, signal, sys
from pathlib import Path
from sagemaker_pipelines_local import run_pipeline
# As in a terminal's foreground (a background job inherits SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
workdir, definition = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
result = run_pipeline(definition, workdir=workdir, pipeline_name="demo", region="eu-west-1",
                      execution_id="sig")
print(result.status, flush=True)
sys.exit({"Succeeded": 0, "Stopped": 130}.get(result.status, 1))
"""


def _definition(out: Path) -> dict:
    sleepy = processing_step("Sleepy", "step.py", arguments=[str(out)])
    after = processing_step("After", "step.py", arguments=[str(out)], depends_on=["Sleepy"])
    return make_definition([sleepy, after])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {DEADLINE:.0f} s: {what}")
        time.sleep(0.05)


@pytest.fixture(params=["new process", "warm pool"])
def started_runner(request, tmp_path):
    """A runner process in the middle of the step; yields (runner, step pids, workdir, out).

    The step is a new process of the runner's, or forked from a warm pool started before.
    """
    env = dict(os.environ)
    if request.param == "warm pool":
        _warm_up(WarmPools(), tmp_path / "warm-up")
    else:
        env["SAGEMAKER_PIPELINES_LOCAL_WARM_POOL"] = "0"
    workdir, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    put_script(LocalObjectStore(workdir), tmp_path, "step.py", STEP_SCRIPT)
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(_definition(out)))
    runner_py = tmp_path / "runner.py"
    runner_py.write_text(textwrap.dedent(RUNNER))
    runner = subprocess.Popen(
        [sys.executable, str(runner_py), str(workdir), str(definition)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    pids: list[int] = []
    try:
        _wait_for(lambda: (out / "pids").exists() or runner.poll() is not None, "no step pids")
        assert (out / "pids").exists(), f"the runner ended first: {runner.communicate()}"
        pids = [int(p) for p in (out / "pids").read_text().split()]
        assert all(_alive(p) for p in pids)
        forked = int((out / "parent").read_text()) != runner.pid
        assert forked == (request.param == "warm pool")
        yield runner, pids, workdir, out
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for pid in pids:  # never leave a process behind, even when an assertion failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _record(workdir: Path) -> dict:
    return json.loads((workdir / "runs" / "sig" / "run.json").read_text())


@pytest.mark.parametrize(
    ("sig", "words"), [(signal.SIGINT, "SIGINT (Ctrl-C)"), (signal.SIGTERM, "SIGTERM")]
)
def test_a_signal_stops_every_step_process_and_the_record_says_stopped(started_runner, sig, words):
    runner, pids, workdir, out = started_runner
    runner.send_signal(sig)
    stdout, stderr = runner.communicate(timeout=DEADLINE)
    assert runner.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    _wait_for(lambda: not any(_alive(p) for p in pids), f"step processes {pids} survive")
    assert not (out / "slept-to-the-end").exists()
    record = _record(workdir)
    assert record["status"] == "Stopped"
    assert record["failure_reason"] == f"The execution was stopped: the runner received {words}."
    assert record["end_time"]
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["Sleepy"]["status"] == "Stopped" and steps["Sleepy"]["end_time"]
    assert steps["After"]["status"] == "NotRun"
    assert (workdir / "runs" / "sig" / "report.html").is_file()


def test_sigkill_of_the_runner_kills_the_steps_and_the_next_runner_finishes_the_record(
    started_runner,
):
    runner, pids, workdir, out = started_runner
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=DEADLINE)
    _wait_for(lambda: not any(_alive(p) for p in pids), f"step processes {pids} survive")
    assert not (out / "slept-to-the-end").exists()
    assert _record(workdir)["status"] == "Executing"  # what the killed runner left

    assert recover_abandoned_runs(workdir) == [workdir / "runs" / "sig" / "run.json"]
    record = _record(workdir)
    assert record["status"] == "Stopped"
    assert f"the runner (process {runner.pid}) was killed" in record["failure_reason"]
    assert record["end_time"]
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["Sleepy"]["status"] == "Stopped"
    assert steps["Sleepy"]["failure_reason"] == "stopped: the runner was killed while this step ran"
    assert steps["After"]["status"] == "NotRun"
    assert (workdir / "runs" / "sig" / "report.html").is_file()
    assert recover_abandoned_runs(workdir) == []  # once finished, left alone


def test_a_run_whose_runner_is_alive_is_not_touched(tmp_path):
    run_dir = tmp_path / "runs" / "live"
    run_dir.mkdir(parents=True)
    from sagemaker_pipelines_local.runs import runner_process

    record = {"status": "Executing", "runner": runner_process(), "steps": []}
    (run_dir / "run.json").write_text(json.dumps(record))
    assert recover_abandoned_runs(tmp_path) == []
    assert json.loads((run_dir / "run.json").read_text())["status"] == "Executing"
