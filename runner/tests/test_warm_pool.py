"""Warm pools: a step forked from a warm Python sees what a new process would see.

Each test runs the same script twice through :func:`run_process`, once as a new process and
once forked from a warm pool, and compares what the script observed or did; every warm run
also checks that it really was forked (``process_starts``), so a silent fall-back to a new
process cannot pass for the warm path. The servers listen in a private folder of the test
and are stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sagemaker_pipelines_local import processes, run_pipeline, warmpool
from sagemaker_pipelines_local.expressions import StepFailure
from sagemaker_pipelines_local.processes import ProcessTracker, StepStopped, run_process
from sagemaker_pipelines_local.warmpool import WarmPools, default_keep_alive, stop_warm_pools
from test_runner import make_definition, processing_step, put_script

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

PYTHON = sys.executable
DEADLINE = 60.0

# What a step's process can observe of how it was started.
PROBE = """
import json, os, signal, sys, tempfile
out = sys.argv[1]
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
with open("/opt/ml/processing/mapped.txt", "w") as fh:
    fh.write("through the container path")
json.dump({
    "argv": sys.argv,
    "path0": sys.path[0],
    "environ": dict(os.environ),
    "cwd": os.getcwd(),
    "own_group": os.getpgid(0) == os.getpid(),
    "own_session": os.getsid(0) == os.getpid(),
    "name": __name__,
    "file": __file__,
    "stdin": sys.stdin.read(),
    "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    "sigchld": signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,
    "open_fds": len(fds) - 1,
    "tempdir": tempfile.gettempdir(),
    "main_is_module": sys.modules["__main__"].__dict__ is globals(),
}, open(out, "w"), sort_keys=True)
print("to stdout"); print("to stderr", file=sys.stderr)
"""


@contextlib.contextmanager
def _private_pools(keep_alive: float):
    """Warm pools in a folder of their own (short: a socket's path has a length limit)."""
    folder = Path(tempfile.mkdtemp(prefix="wp-", dir="/tmp"))
    try:
        yield WarmPools(keep_alive=keep_alive, runtime_dir=folder)
    finally:
        stop_warm_pools(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pools():
    """One server for the module's tests: it starts in seconds, forks in milliseconds."""
    with _private_pools(60) as pools:
        yield pools


def _job(tmp_path: Path, name: str, warm: WarmPools | None):
    step_dir = tmp_path / name
    work = step_dir / "work"
    (work / "opt" / "ml" / "processing").mkdir(parents=True)
    return SimpleNamespace(
        name=name,
        step_dir=step_dir,
        work_dir=work,
        logs={},
        cancel=threading.Event(),
        processes=ProcessTracker(),
        warm=warm,
        python=PYTHON,
        process_starts=[],
    )


def _env(job, **extra: str) -> dict[str, str]:
    env = {
        **processes._CONTAINER_ENV,
        "HOME": str(job.work_dir / "home"),
        "PATH": processes._SYSTEM_PATH,
        "PYTHONPATH": str(processes.CONTAINER_PATHS),
        "SAGEMAKER_PIPELINES_LOCAL_OPT_ML": str(job.work_dir / "opt" / "ml"),
        "STEP_SETTING": "value with 'quotes' and é",
    }
    return {**env, **extra}


def _script(tmp_path: Path, source: str, name: str = "step.py") -> Path:
    path = tmp_path / "code" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def _warm_up(pools: WarmPools, tmp_path: Path) -> None:
    """Run a step until one is forked: the first starts the server and runs as before."""
    script = _script(tmp_path, "print('warming')", "warm_up.py")
    deadline = time.monotonic() + DEADLINE
    while True:
        job = _job(tmp_path / f"warm-{time.monotonic_ns()}", "WarmUp", pools)
        assert run_process(job, [PYTHON, str(script)], cwd=job.work_dir, env=_env(job)) == 0
        if job.process_starts == ["warm pool"]:
            return
        assert time.monotonic() < deadline, "no warm pool came up"
        time.sleep(0.2)


def _run_both(tmp_path, pools, script, *args, timeout=None, **env):
    """(new process, warm pool): each a (job, exit code or the exception raised)."""
    _warm_up(pools, tmp_path)
    results = []
    for label, warm in (("new", None), ("warm", pools)):
        job = _job(tmp_path, label, warm)
        cmd = [PYTHON, str(script), *[str(job.step_dir / a) if a == "@out" else a for a in args]]
        try:
            outcome: object = run_process(
                job, cmd, cwd=job.work_dir, env=_env(job, **env), timeout=timeout
            )
        except (StepFailure, StepStopped) as exc:
            outcome = exc
        expected = ["warm pool"] if warm is not None else ["new process"]
        assert job.process_starts == expected, label
        results.append((job, outcome))
    return results


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_forked_step_sees_what_a_new_process_sees(tmp_path, pools):
    script = _script(tmp_path, PROBE)
    (new, new_rc), (warm, warm_rc) = _run_both(tmp_path, pools, script, "@out", "--flag", "x y")
    assert new_rc == warm_rc == 0
    seen = []
    for job in (new, warm):
        observed = json.loads((job.step_dir / "@out").read_text())
        # The same step in another folder: the folder's name is the only difference.
        seen.append(json.loads(json.dumps(observed).replace(str(job.step_dir), "<step>")))
        mapped = job.work_dir / "opt" / "ml" / "processing" / "mapped.txt"
        assert mapped.read_text() == "through the container path"
        assert (job.step_dir / "stdout.log").read_text() == "to stdout\n"
        assert (job.step_dir / "stderr.log").read_text() == "to stderr\n"
    assert seen[0] == seen[1]
    assert seen[1]["environ"]["STEP_SETTING"] == "value with 'quotes' and é"
    assert seen[1]["argv"][1:] == ["<step>/@out", "--flag", "x y"]
    assert seen[1]["own_group"] and seen[1]["own_session"] and seen[1]["sigint"]
    assert seen[1]["open_fds"] == 3  # stdin, stdout, stderr: nothing of the server's


@pytest.mark.parametrize(
    ("source", "code", "stderr_has"),
    [
        ("import sys; sys.exit(3)", 3, None),
        ("import sys; sys.exit(-1)", 255, None),
        ("import sys; sys.exit('a message for the log')", 1, "a message for the log"),
        ("def f():\n    raise ValueError('boom')\nf()", 1, "ValueError: boom"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM, None),
        ("import atexit; atexit.register(lambda: print('at exit'))", 0, None),
    ],
)
def test_exit_codes_and_tracebacks_are_a_new_processes(tmp_path, pools, source, code, stderr_has):
    script = _script(tmp_path, source)
    (new, new_rc), (warm, warm_rc) = _run_both(tmp_path, pools, script)
    assert new_rc == warm_rc == code
    logs = [(j.step_dir / "stderr.log").read_text() for j in (new, warm)]
    assert logs[0].replace(str(new.step_dir), "") == logs[1].replace(str(warm.step_dir), "")
    if stderr_has:
        assert stderr_has in logs[1]
    if "raise" in source:  # the traceback starts at the script, not in the server
        assert logs[1].splitlines()[1].startswith(f'  File "{script}"')
    stdout = [(j.step_dir / "stdout.log").read_text() for j in (new, warm)]
    assert stdout[0] == stdout[1]


def test_the_time_limit_ends_a_forked_step_and_its_children(tmp_path, pools):
    script = _script(
        tmp_path,
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(sys.argv[1], "w").write(str(child.pid))
        time.sleep(600)
        """,
    )
    results = _run_both(tmp_path, pools, script, "@out", timeout=3)
    for job, outcome in results:
        assert isinstance(outcome, StepFailure)
        assert "MaxRuntimeExceeded" in str(outcome)
        grandchild = int((job.step_dir / "@out").read_text())
        _wait_for(lambda g=grandchild: not _alive(g), "the step's child outlived the limit")


def test_a_stop_request_ends_a_forked_step(tmp_path, pools):
    script = _script(tmp_path, "import time, sys; open(sys.argv[1], 'w').close(); time.sleep(600)")
    _warm_up(pools, tmp_path)
    job = _job(tmp_path, "stopped", pools)
    marker = job.step_dir / "started"
    threading.Thread(
        target=lambda: (_wait_for(marker.exists, "never started"), job.cancel.set()), daemon=True
    ).start()
    with pytest.raises(StepStopped):
        run_process(job, [PYTHON, str(script), str(marker)], cwd=job.work_dir, env=_env(job))
    assert job.process_starts == ["warm pool"]


def test_the_server_kills_a_step_whose_runner_is_gone(tmp_path, pools):
    """What happens when the runner dies (SIGKILL): its end of the connection closes."""
    script = _script(tmp_path, "import time, sys; open(sys.argv[1], 'w').close(); time.sleep(600)")
    _warm_up(pools, tmp_path)
    job = _job(tmp_path, "orphan", pools)
    marker = job.step_dir / "started"
    with open(job.step_dir / "out.log", "wb") as out, open(job.step_dir / "err.log", "wb") as err:
        proc = pools.start(
            PYTHON, [PYTHON, str(script), str(marker)], cwd=job.work_dir, env=_env(job),
            stdout=out, stderr=err,
        )  # fmt: skip
    assert proc is not None
    proc.go()
    _wait_for(marker.exists, "the step never started")
    assert _alive(proc.pid)
    proc._conn.close()  # as the kernel does for a runner that died
    _wait_for(lambda: not _alive(proc.pid), "the step outlived its runner")


def _server_pid(folder: Path) -> int:
    """The pid of the one server in ``folder``, as it answers a ping."""
    (path,) = folder.glob("*.sock")
    sock = warmpool._connect(path)
    assert sock is not None
    with sock:
        warmpool._request(sock, {"op": "ping"}, [])
        answer = warmpool._read_line(sock)
    assert answer is not None
    return int(answer["pid"])


def test_a_step_whose_warm_pool_dies_fails_and_is_killed(tmp_path):
    script = _script(
        tmp_path,
        """
        import os, sys, time
        open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(600)
        """,
    )
    with _private_pools(60) as pools:
        _warm_up(pools, tmp_path)
        server = _server_pid(pools._folder())
        job = _job(tmp_path, "orphaned", pools)
        marker = job.step_dir / "pid"

        def kill_the_server() -> None:
            _wait_for(marker.exists, "never started")
            os.kill(server, signal.SIGKILL)

        threading.Thread(target=kill_the_server, daemon=True).start()
        with pytest.raises(StepFailure, match="the warm pool its process was forked from ended"):
            run_process(job, [PYTHON, str(script), str(marker)], cwd=job.work_dir, env=_env(job))
        assert job.process_starts == ["warm pool"]
        step = int(marker.read_text())
        _wait_for(lambda: not _alive(step), "the step outlived its warm pool")


@pytest.mark.parametrize(
    ("name", "value"), [("OMP_NUM_THREADS", "1"), ("LC_ALL", "C"), ("TZ", "Asia/Tokyo")]
)
def test_a_step_that_sets_import_time_variables_starts_a_new_process(tmp_path, pools, name, value):
    script = _script(tmp_path, f"import os, sys; print(os.environ['{name}'])")
    _warm_up(pools, tmp_path)
    job = _job(tmp_path, "omp", pools)
    cmd = [PYTHON, str(script)]
    env = _env(job, **{name: value})
    assert name in (pools.why_not(PYTHON, cmd, env) or "")
    assert run_process(job, cmd, cwd=job.work_dir, env=env) == 0
    assert job.process_starts == ["new process"]
    assert (job.step_dir / "stdout.log").read_text() == f"{value}\n"
    for other in (["/bin/sh", str(script)], [PYTHON, "-m", "json.tool"]):
        assert pools.why_not(PYTHON, other, _env(job)) == "not a `python script.py` command"


def test_an_idle_server_exits_after_its_keep_alive(tmp_path):
    with _private_pools(1) as pools:
        _warm_up(pools, tmp_path)
        folder = pools._folder()
        _wait_for(lambda: not list(folder.glob("*.sock")), "the idle server stayed up")


def test_stop_warm_pools_stops_them(tmp_path):
    with _private_pools(60) as pools:
        _warm_up(pools, tmp_path)
        folder = pools._folder()
        assert list(folder.glob("*.sock"))
        assert stop_warm_pools(folder) == 1
        assert not list(folder.glob("*.sock"))


def test_a_folder_others_can_open_is_never_used(tmp_path, monkeypatch):
    shared = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))
    try:
        folder = shared / f"sagemaker-pipelines-local-{os.getuid()}"
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
        pools = WarmPools(keep_alive=60)
        job = _job(tmp_path, "shared", pools)
        script = _script(tmp_path, "print('ok')")
        for _ in range(3):
            job.process_starts.clear()
            assert run_process(job, [PYTHON, str(script)], cwd=job.work_dir, env=_env(job)) == 0
            assert job.process_starts == ["new process"]
        assert list(folder.iterdir()) == []  # no server, no socket
    finally:
        for path in sorted(shared.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        shared.rmdir()


@pytest.mark.parametrize("raw", ["soon", "-1", "7200"])
def test_a_bad_keep_alive_is_refused_by_name(monkeypatch, raw):
    monkeypatch.setenv("SAGEMAKER_PIPELINES_LOCAL_WARM_POOL", raw)
    with pytest.raises(ValueError, match="SAGEMAKER_PIPELINES_LOCAL_WARM_POOL"):
        default_keep_alive()


def test_zero_turns_warm_pools_off(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_PIPELINES_LOCAL_WARM_POOL", "0")
    pools = WarmPools()
    assert not pools.enabled
    assert pools.why_not(PYTHON, [PYTHON, str(_script(tmp_path, ""))], {}) == "warm pools are off"


def _pipeline(store, tmp_path: Path) -> dict:
    put_script(store, tmp_path, "step.py", "import sys; print('ran', sys.argv[1:])")
    first = processing_step("First", "step.py", arguments=["one"])
    second = processing_step("Second", "step.py", arguments=["two"], depends_on=["First"])
    return make_definition([first, second])


def _processes(result) -> dict[str, list[str]]:
    record = json.loads((result.run_dir / "run.json").read_text())
    return {s["name"]: s["environment"]["processes"] for s in record["steps"]}


def test_a_run_records_and_reports_the_steps_forked_from_its_warm_pool(store, workdir, tmp_path):
    definition = _pipeline(store, tmp_path)
    options = {"workdir": workdir, "pipeline_name": "demo", "region": "eu-west-1"}
    folder = Path(os.environ["XDG_RUNTIME_DIR"]) / f"sagemaker-pipelines-local-{os.getuid()}"
    stop_warm_pools(folder)  # none up: the first run starts it
    cold = run_pipeline(definition, warm_pool=60, **options)
    assert cold.status == "Succeeded"
    assert _processes(cold)["First"] == ["new process"]
    _wait_for(lambda: list(folder.glob("*.sock")), "the run started no warm pool")
    warm = run_pipeline(definition, warm_pool=60, **options)
    assert _processes(warm) == {"First": ["warm pool"], "Second": ["warm pool"]}
    report = (warm.run_dir / "report.html").read_text()
    assert report.count("forked from the warm pool") == 2
    off = run_pipeline(definition, warm_pool=0, **options)
    assert _processes(off) == {"First": ["new process"], "Second": ["new process"]}
    assert "forked from the warm pool" not in (off.run_dir / "report.html").read_text()
    for result in (cold, warm, off):
        steps = result.run_dir / "steps"
        logs = [(steps / name / "stdout.log").read_text() for name in ("First", "Second")]
        assert logs == ["ran ['one']\n", "ran ['two']\n"]


def test_a_keep_alive_out_of_range_is_refused_before_anything_runs(store, workdir, tmp_path):
    definition = _pipeline(store, tmp_path)
    with pytest.raises(ValueError, match="warm_pool must be between 0"):
        run_pipeline(
            definition, workdir=workdir, pipeline_name="d", region="eu-west-1", warm_pool=-5
        )
    assert not (workdir / "runs").exists() or not list((workdir / "runs").iterdir())
