"""The local runner's own tests (runner/tests), once per suite, in runner/.venv.

They run as one test of this suite, so the workers schedule them beside the generated
projects instead of before them (one core idled while they ran alone). `make runner-test`
runs them by themselves.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import ROOT, summary_line

pytestmark = pytest.mark.slow

RUNNER = ROOT / "runner"


def test_the_runners_own_tests_pass():
    python = RUNNER / ".venv" / "bin" / "python"
    assert python.is_file(), "runner/.venv is missing: `make test` (or `make runner-test`) makes it"
    # As `make runner-test` runs them: nothing of this session's pytest-xdist worker.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=RUNNER, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    output = f"{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"the runner's tests failed:\n{output}"
    summary = summary_line(result.stdout)
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
