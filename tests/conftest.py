"""Fixtures of the template's own tests: render projects with Copier's public API."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
BIN = Path(sys.executable).parent
UV = shutil.which("uv", path=str(BIN)) or shutil.which("uv") or "uv"
# The generated tests that depend only on the SDK and the problem type (`deploy`: approve,
# deploy, serve, invoke; `rerun`: a second run-local) run in one matrix case of each pair;
# the other runs of a generated project's tests deselect them with this.
ONCE_PER_PAIR = "-m 'not deploy and not rerun'"


def load(name: str, path: Path):
    """Import a module of this repository that is not on the path (the docs' hooks)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="session")
def private_warm_pools():
    """The local runs of this session (the tutorial's capture, the projects' commands) keep
    their warm pools in a folder of their own, stopped at the end: the default keep-alive
    would leave them up ten minutes after the tests. The runner's stop_warm_pools is read
    from its source (this venv has no runner)."""
    folder = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))  # a socket's path is short
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield folder
    warmpool = load(
        "warmpool", ROOT / "runner" / "src" / "sagemaker_pipelines_local" / "warmpool.py"
    )
    warmpool.stop_warm_pools(folder / f"sagemaker-pipelines-local-{os.getuid()}")
    shutil.rmtree(folder, ignore_errors=True)
    if saved is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = saved


# The docs' reference hook renders projects for the site; the tests render with the same code.
reference = load("docs_reference", ROOT / "docs" / "_hooks" / "reference.py")
render = reference.render


def run(
    command: list[str], cwd: Path, timeout: int = 1500, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command of the generated project as a user would; fail with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env.update(extra_env or {})
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


class SharedBytecode:
    """Compiled bytecode shared by the generated projects' venvs within one session.

    Every project's venv links its packages' files from uv's cache, so the projects import
    the very same files, and each compiled them again on its first `make test` (about 20 s of
    CPU per project). After a project's tests, `keep` files its .pyc here under the identity of
    the source it was compiled from (device, inode, size, mtime): only that very file can
    match. Before the next project's tests, `seed` gives each of its sources the .pyc kept for
    it. Python still checks each .pyc against its source and recompiles a stale one, writing a
    new file in its place, never into the shared one.
    """

    PYC = re.compile(r"^(?P<module>[^.]+)\.(?P<tag>[a-z]+-\d+)\.pyc$")

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _identity(source: Path) -> str:
        stat = source.stat()
        return f"{stat.st_dev}-{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}"

    @staticmethod
    def _site_packages(venv: Path) -> list[Path]:
        return list(venv.glob("lib/python3*/site-packages"))

    def keep(self, venv: Path) -> None:
        for site in self._site_packages(venv):
            for pyc in site.rglob("__pycache__/*.pyc"):
                match = self.PYC.match(pyc.name)
                source = pyc.parent.parent / f"{match['module']}.py" if match else None
                if source is None or not source.is_file():
                    continue
                kept = self.root / f"{self._identity(source)}.{match['tag']}.pyc"
                try:
                    os.link(pyc, kept)
                except FileExistsError:
                    pass  # kept already, from another project or worker

    def seed(self, venv: Path) -> None:
        kept: dict[str, list[tuple[str, Path]]] = {}
        for path in self.root.iterdir():
            identity, tag, _ = path.name.split(".")
            kept.setdefault(identity, []).append((tag, path))
        if not kept:
            return
        for site in self._site_packages(venv):
            for source in site.rglob("*.py"):
                for tag, path in kept.get(self._identity(source), []):
                    target = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
                    if not target.exists():
                        target.parent.mkdir(exist_ok=True)
                        os.link(path, target)


@pytest.fixture(scope="session")
def shared_bytecode(tmp_path_factory: pytest.TempPathFactory) -> SharedBytecode:
    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist each worker has a folder of its own in the session's: share that one.
    session = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return SharedBytecode(session / "shared-bytecode")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: installs and runs a generated project (minutes)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (minutes each) first, so the workers share them out at the start; run
    last, one of them would leave the other worker idle for minutes at the end. Of those, the
    answer matrix first: its projects keep the bytecode the later ones reuse (SharedBytecode).
    """
    items.sort(
        key=lambda item: (
            item.get_closest_marker("slow") is None,
            item.path.name != "test_generated_projects.py",
        )
    )


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
