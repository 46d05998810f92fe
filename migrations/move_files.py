"""Carry a team's edits along when a template version moves a file.

`copier update` merges the team's changes into files that keep their path. When a new
template version moves a file, Copier writes the new path from the template and deletes the
old one, edits included. This migration runs after the update (copier.yml, `_migrations`)
and redoes the merge for each moved file:

    base   = the old path, rendered by the version the project came from
    ours   = the old path as the team committed it (git HEAD, before the update)
    theirs = the new path as the new version rendered it

`git merge-file` applies the team's changes (base -> ours) to the new file. Where both sides
changed the same lines, the file gets inline conflict markers labelled like Copier's own
("before updating" / "after updating"); the project's pre-commit refuses to commit them.

Standard library and Copier only: it runs on the interpreter that runs `copier update`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

# Template version -> files it moved (old path -> new path), relative to the project root.
MOVES: dict[str, dict[str, str]] = {
    "v0.2.0": {
        "buildspec.yml": "infra/buildspec.yml",
        "buildspec-release.yml": "infra/buildspec-release.yml",
    },
}
ANSWERS_FILE = ".copier-answers.yml"


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], capture_output=True, check=check)


def committed(path: str) -> bytes | None:
    """The file as the team committed it before the update, or None."""
    result = git("show", f"HEAD:{path}", check=False)
    return result.stdout if result.returncode == 0 else None


def render_previous_version(version_from: str, workdir: Path) -> Path:
    """Render the version the project came from, with its answers, into `workdir`."""
    import copier
    import yaml

    answers = yaml.safe_load(committed(ANSWERS_FILE) or b"{}") or {}
    source = answers.get("_src_path")
    if not source:
        raise SystemExit(f"{ANSWERS_FILE} at HEAD names no _src_path: cannot rebuild the base.")
    copier.run_copy(
        source,
        str(workdir),
        data={k: v for k, v in answers.items() if not k.startswith("_")},
        vcs_ref=version_from,
        defaults=True,
        unsafe=True,
        quiet=True,
        skip_tasks=True,  # the dataset task needs the team's original CSV; the base does not
        settings=copier.Settings(),
    )
    return workdir


def merge(new: Path, ours: bytes, base: bytes) -> int:
    """Merge the team's changes into `new` in place; return the number of conflicts."""
    with tempfile.TemporaryDirectory() as tmp:
        ours_file, base_file = Path(tmp, "ours"), Path(tmp, "base")
        ours_file.write_bytes(ours)
        base_file.write_bytes(base)
        labels = ["-L", "before updating", "-L", "base", "-L", "after updating"]
        result = git("merge-file", "-p", *labels, str(ours_file), str(base_file), str(new),
                     check=False)  # fmt: skip
        if result.returncode < 0 or result.returncode > 127:
            raise SystemExit(f"git merge-file failed on {new}: {result.stderr.decode()}")
        new.write_bytes(result.stdout)
        return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, choices=sorted(MOVES))
    parser.add_argument("--from-ref", required=True, help="template version updated from")
    args = parser.parse_args(argv)

    moves = {old: new for old, new in MOVES[args.version].items() if committed(old) is not None}
    if not moves:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        previous = render_previous_version(args.from_ref, Path(tmp) / "previous")
        conflicts = []
        for old, new in moves.items():
            ours = committed(old)
            base_file = previous / old
            target = Path(new)
            if ours is None or not base_file.is_file() or not target.is_file():
                continue
            base = base_file.read_bytes()
            if ours != base and merge(target, ours, base):
                conflicts.append(new)
            Path(old).unlink(missing_ok=True)
            edited = "with your edits" if ours != base else "unchanged by you"
            print(f"Template {args.version} moved {old} -> {new} ({edited}).")
    for path in conflicts:
        print(f"Conflict in {path}: resolve the <<<<<<< / >>>>>>> blocks, then commit.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
