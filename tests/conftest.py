"""Fixtures of the template's own tests: render projects with Copier's public API."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import copier
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BIN = Path(sys.executable).parent
UV = shutil.which("uv", path=str(BIN)) or shutil.which("uv") or "uv"


def render(destination: Path, **answers: object) -> Path:
    """`copier copy --defaults --data ...` of this working tree (uncommitted changes included)."""
    copier.run_copy(
        str(ROOT),
        str(destination),
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref="HEAD",
        settings=copier.Settings(),
    )
    return destination


def run(command: list[str], cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run a command of the generated project as a user would; fail with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    # A user types these commands in a shell, not inside another make: drop what the template's
    # own `make test` passes down (it makes the nested make print "Entering directory" lines).
    for name in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"):
        env.pop(name, None)
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"`{' '.join(command)}` failed in {cwd} (exit {result.returncode}):\n"
        f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return result


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: installs and runs a generated project (minutes)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (minutes each) first, so the workers share them out at the start; run
    last, one of them would leave the other worker idle for minutes at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def summary_line(output: str) -> str:
    """The final `== N passed ... in Xs ==` line of a pytest run, wherever it is in the output."""
    lines = [line for line in output.splitlines() if re.match(r"^=+ .* in [\d.]+s", line)]
    assert lines, f"no pytest summary line in the output:\n{output[-3000:]}"
    return lines[-1]


@pytest.fixture
def render_project(tmp_path: Path):
    def _render(name: str = "project", **answers: object) -> Path:
        return render(tmp_path / name, **answers)

    return _render
