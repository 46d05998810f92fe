"""Remove the local runner that projects rendered before 0.3.0 carried, keeping the team's edits.

Up to 0.2.0 every project had a copy of the runner in `src/<package>/local/` and its tests in
`tests/test_local_runner.py`; from 0.3.0 the project depends on the package
sagemaker-pipelines-local instead. This migration runs after every `copier update`
(copier.yml, `_migrations`) and looks at the project itself, not at version numbers: the
published template has no tags, so a project may record only a commit. When git HEAD holds
no vendored file, it does nothing.

For each vendored file at HEAD it compares the team's copy with the same file rendered by
the template version the project came from (the base):

- unchanged: the file goes;
- edited (or added by the team): the file leaves src/ and tests/ and is kept under
  `local-runner-edits/`, where it neither imports nor runs, and the migration says so.

Standard library, Copier and PyYAML only: it runs on the interpreter that runs `copier update`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from move_files import ANSWERS_FILE, committed, git, render_previous_version

KEPT_DIR = "local-runner-edits"
RUNNER_TESTS = "tests/test_local_runner.py"


def vendored_files() -> list[str]:
    """The runner's files as the team committed them (HEAD), relative to the project root."""
    import yaml

    answers = yaml.safe_load(committed(ANSWERS_FILE) or b"{}") or {}
    package = answers.get("package_name")
    if not package:
        return []
    listed = git("ls-tree", "-r", "--name-only", "HEAD", "--", f"src/{package}/local/",
                 RUNNER_TESTS, check=False)  # fmt: skip
    names = listed.stdout.decode().splitlines() if listed.returncode == 0 else []
    return [name for name in names if "__pycache__" not in name]


def remove(name: str) -> None:
    """The file, what an update left of it (a .rej hunk), and its folder once empty."""
    for path in (Path(name), Path(f"{name}.rej")):
        path.unlink(missing_ok=True)
    folder = Path(name).parent
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    if folder != Path("tests") and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-ref", required=True, help="template version updated from")
    args = parser.parse_args(argv)

    names = vendored_files()
    if not names:
        return 0
    kept: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = render_previous_version(args.from_ref, Path(tmp) / "previous")
        for name in names:
            ours = committed(name)
            base = base_dir / name
            if ours is not None and (not base.is_file() or base.read_bytes() != ours):
                target = Path(KEPT_DIR) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(ours)
                kept.append((name, "edited by you" if base.is_file() else "added by you"))
            remove(name)
    print(
        "The local runner is now the package sagemaker-pipelines-local (a dev dependency in "
        f"pyproject.toml): removed its copy from src/ and tests/ ({len(names)} files)."
    )
    if kept:
        print(f"Kept your changes to it under {KEPT_DIR}/, where they neither import nor run:")
        for name, why in kept:
            print(f"  {KEPT_DIR}/{name} ({why})")
        print(
            "Port what you still need (to the package, upstream, or your own code; imports of "
            f"<package>.local become sagemaker_pipelines_local), then delete {KEPT_DIR}/."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
