"""Run a pipeline script in this test process, with the command line a container gives it.

`python preprocess.py --input-dir ...` in a fresh interpreter costs ~3 s of importing pandas,
scikit-learn and SciPy; here the script runs as `__main__` with that `sys.argv`, those
environment variables and its folder first on `sys.path`, and what it printed, its exit code
and any traceback come back as a subprocess's would. The end-to-end `run-local` test runs the
same scripts as real subprocesses, in the container image's library versions.
"""

from __future__ import annotations

import io
import os
import runpy
import sys
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ScriptResult:
    returncode: int
    stdout: str
    stderr: str


def run_script(script: Path, *args: object, env: dict[str, str] | None = None) -> ScriptResult:
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, saved_path, saved_env = sys.argv, sys.path[:], dict(os.environ)
    saved_dont_write = sys.dont_write_bytecode
    # No __pycache__ in scripts/: SDK v2 tars that folder, and the definition would change.
    sys.dont_write_bytecode = True
    sys.argv = [str(script), *(str(arg) for arg in args)]
    sys.path.insert(0, str(script.parent))
    os.environ.update(env or {})
    returncode = 0
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr), warnings.catch_warnings():
            # A warning goes to stderr, where a subprocess would have printed it.
            warnings.simplefilter("default")
            warnings.showwarning = _to_stderr
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        # sys.exit("message") prints the message and exits 1, as the interpreter does.
        if isinstance(stop.code, str):
            print(stop.code, file=stderr)
        returncode = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except Exception:  # an uncaught error: the traceback a subprocess would have printed
        traceback.print_exc(file=stderr)
        returncode = 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.dont_write_bytecode = saved_dont_write
        os.environ.clear()
        os.environ.update(saved_env)
    return ScriptResult(returncode, stdout.getvalue(), stderr.getvalue())


def _to_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
