"""Copier task: make a new project a git repository, with every rendered file staged.

The project's `make lint` runs pre-commit, which works on a git repository's files, and
`copier update` needs one; a folder that is already inside a repository (a monorepo) is
left as it is. Standard library only: the task runs with Copier's own Python.
"""

from __future__ import annotations

import shutil
import subprocess
import sys


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def main() -> None:
    if shutil.which("git") is None:
        print(
            "git is not installed: the project is not a git repository yet; "
            "run `git init` before `make lint` and `copier update`.",
            file=sys.stderr,
        )
        return
    if git("rev-parse", "--is-inside-work-tree").returncode == 0:
        print("Inside an existing git repository: left as it is.")
        return
    for args in (("init", "-q", "-b", "main"), ("add", "-A")):
        result = git(*args)
        if result.returncode != 0:
            print(f"`git {' '.join(args)}` failed: {result.stderr.strip()}", file=sys.stderr)
            raise SystemExit(1)
    print("Initialised a git repository on branch main, every file staged for a first commit.")


if __name__ == "__main__":
    main()
