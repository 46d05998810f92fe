"""Write the uv.lock that a new project starts from, one per SDK.

A project rendered from the template gets `uv.lock` from these seeds: `make install` then
installs the versions the template's tests ran with, without resolving 235 packages (about
30 s) at every first install. Run it after changing the generated project's dependencies
(template/pyproject.toml.jinja or the runner's): `make seed-locks`; `--upgrade` takes the
newest versions the requirements allow instead of keeping the current pins.

Each seed is the lock of a default render, with the project's name and the runner's source
replaced by placeholders that template/uv.lock.jinja fills in.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "_hooks" / "reference.py"
SEEDS = ROOT / "template" / "{% if false %}jinja-includes{% endif %}" / "locks"
SDKS = ("v3", "v2")
# What uv.lock.jinja fills in: the project's name, and the runner's source as a dev
# requirement and as a locked package.
PLACEHOLDERS = ("@PROJECT_SLUG@", "@RUNNER_REQUIREMENT@", "@RUNNER_SOURCE@")


def seed_path(sdk: str) -> Path:
    return SEEDS / f"sdk-{sdk}.lock"


@functools.cache
def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", REFERENCE)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference


def render(destination: Path, sdk: str) -> Path:
    """A default render of this working tree with the given SDK (the docs' own renderer)."""
    return _reference().render(destination, sagemaker_sdk=sdk)


def to_seed(lock: str, slug: str, runner: Path) -> str:
    """A project's lock -> a seed: its name and the runner's path become placeholders."""
    directory = f"directory = {json.dumps(str(runner))}"  # as the template's tojson spells it
    seed = lock.replace(f'name = "{slug}"', 'name = "@PROJECT_SLUG@"')
    seed = seed.replace(f"source = {{ {directory} }}", "source = { @RUNNER_SOURCE@ }")
    seed = seed.replace(directory, "@RUNNER_REQUIREMENT@")
    for placeholder in PLACEHOLDERS:
        if placeholder not in seed:
            raise SystemExit(f"seed-locks: {placeholder} not found: uv's lock format changed?")
    if "{% endraw %}" in seed:
        raise SystemExit("seed-locks: the lock contains '{% endraw %}'; it cannot be a seed.")
    # Inside raw, the lock is data to Jinja whatever braces it holds; the file ends with a
    # newline after the closing tag, as the lock does.
    return "{% raw %}" + seed.removesuffix("\n") + "{% endraw %}\n"


def slug_of(project: Path) -> str:
    match = re.search(r'(?m)^name = "([^"]+)"', (project / "pyproject.toml").read_text())
    if match is None:
        raise SystemExit(f"seed-locks: no project name in {project / 'pyproject.toml'}")
    return match.group(1)


def lock(project: Path, uv: str, upgrade: bool) -> None:
    command = [uv, "lock", "--python", "3.11"] + (["--upgrade"] if upgrade else [])
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"seed-locks: `{' '.join(command)}` failed:\n{result.stderr}")
    resolved = [line for line in result.stderr.splitlines() if line.startswith("Resolved")]
    print(f"  {resolved[-1] if resolved else 'locked'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    parser.add_argument("--uv", default=shutil.which("uv") or "uv")
    args = parser.parse_args()
    uv = shutil.which(args.uv)
    if uv is None:
        raise SystemExit(f"seed-locks: uv not found ({args.uv}); pass --uv PATH.")
    args.uv = str(Path(uv).resolve())
    SEEDS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seed-locks-") as scratch:
        for sdk in SDKS:
            project = render(Path(scratch) / f"sdk-{sdk}", sdk)
            print(f"sdk {sdk}: {project}")
            lock(project, args.uv, args.upgrade)
            text = (project / "uv.lock").read_text()
            seed = to_seed(text, slug_of(project), (ROOT / "runner").resolve())
            seed_path(sdk).write_text(seed)
            packages = text.count("[[package]]")
            print(f"  wrote {seed_path(sdk).relative_to(ROOT)} ({packages} packages)")


if __name__ == "__main__":
    sys.exit(main())
