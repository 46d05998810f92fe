"""Run the tutorial's commands on a freshly rendered project and save what they print.

    make docs-capture                                  # from the repository root
    python docs/_capture/capture_tutorial.py [--out DIR] [--workdir DIR] [--uv PATH]

Renders the default project from this working tree (`copier copy --vcs-ref HEAD`, so
uncommitted changes are included), installs it, and runs each command of the tutorial as a
user types it: `make` targets, and `python -m iris_classifier ...` with the project's
`.venv` activated. `upsert` and `start` go to a moto server on 127.0.0.1 (the project's
own test dependency) through AWS_ENDPOINT_URL: a local stand-in for an account, with the
fake account id 123456789012.

Each snippet is a console transcript: `$ command`, then what it printed (stdout and stderr
in the order they came). What changes from run to run is replaced by a placeholder (see
NORMALISE): durations, execution ids, timestamps, temporary paths. Output that is long or
machine-dependent is shortened, and the transcript says so on a line starting with "...".
tests/test_docs.py re-runs this capture and compares it with the committed snippets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the questionnaire driver the tests use
from terminal import ORDER, Questionnaire  # noqa: E402

SNIPPETS = ROOT / "docs" / "_snippets"
PROJECT = "iris-classifier"  # where the tutorial renders, relative to the user's folder
PACKAGE = "iris_classifier"
ROLE_ARN = "arn:aws:iam::123456789012:role/iris-classifier-sagemaker-execution"
BUCKET = "my-team-sagemaker-artifacts"
DEFINITION_HEAD = 24  # lines of the definition JSON shown in the tutorial

# (pattern, placeholder): applied to every transcript, in this order.
NORMALISE: list[tuple[str, str]] = [
    (r"\x1b\[[0-9;]*m", ""),  # terminal colours
    (r".*DirtyLocalWarning.*\n(\s+warn\(\n)?", ""),  # only when the template tree is dirty
    (r"(Copying from template version )\S+", r"\1<version>"),
    (r"/tmp/copier\._vcs\.clone\.[A-Za-z0-9_]+", "<template-clone>"),
    # Copier's Python runs the tasks: `python` or `python3`, as the venv that has Copier names it.
    (r"(Running task \d+ of \d+: \[')python3?'", r"\1python3'"),
    (r"\(\d+\.\d+s\)", "(#.#s)"),
    # The cost estimate follows this machine's run time.
    (r"(of this execution: (?:at least )?)\$[\d,.]+", r"\1$#.####"),
    (r"(?<=[Ee]xecution )[a-z0-9]{12}\b", "<execution-id>"),
    (r"(?<=runs/)[a-z0-9]{12}\b", "<execution-id>"),
    (r"(?<=execution/)[a-z0-9]{12}\b", "<execution-id>"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?", "<time>"),
]
# The definition JSON: upload locations carry a content hash and, for SDK v3 training
# code, a timestamp; the version records the template's version (in its metadata and, as
# escaped JSON, in its model card) and the definition's hash.
NORMALISE_DEFINITION: list[tuple[str, str]] = [
    (r"\b[0-9a-f]{64}\b", "<sha256>"),
    (r"-\d{14}(-\d{3})?/", "-<timestamp>/"),
    (r'("TemplateVersion": ")[^"]+"', r'\1<version>"'),
    (r'(\\"template_version\\": \\")[^"\\]+', r"\1<version>"),
]


def normalise(text: str, paths: dict[str, str], rules: list[tuple[str, str]] = NORMALISE) -> str:
    for path, placeholder in sorted(paths.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, placeholder)
    for pattern, placeholder in rules:
        text = re.sub(pattern, placeholder, text)
    return text


def clean_env(extra_path: list[Path]) -> dict[str, str]:
    """The environment of a fresh shell: nothing of AWS, of Copier or of an outer make."""
    drop = ("AWS_", "SAGEMAKER_", "COPIER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for name in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join([*map(str, extra_path), env.get("PATH", "")])
    return env


class Transcript:
    """Runs commands as a user would and records `$ command` + output."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths
        self.lines: list[str] = []

    def run(
        self,
        shown: str,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        expect: int = 0,
        keep: str = "all",
        timeout: int = 1500,
    ) -> str:
        """Run argv; record `$ shown` and its output (`keep`: all, stdout, none)."""
        print(f"capture: {shown}", file=sys.stderr, flush=True)
        merged = subprocess.STDOUT if keep == "all" else subprocess.PIPE
        result = subprocess.run(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=merged, text=True,
            timeout=timeout,
        )  # fmt: skip
        output = result.stdout
        if result.returncode != expect:
            raise SystemExit(
                f"capture: `{shown}` exited {result.returncode}, expected {expect}:\n"
                f"{output[-4000:]}\n{(result.stderr or '')[-4000:]}"
            )
        self.lines.append(f"$ {shown}")
        if keep != "none":
            self.lines.extend(normalise(output, self.paths).rstrip("\n").splitlines())
        if expect != 0:
            self.lines += ["$ echo $?", str(result.returncode)]
        return output

    def interactive(self, shown: str, session: Questionnaire) -> None:
        """Answer every question with Enter, as a person taking the defaults; record the
        terminal's final screen (the questions' help and the answers, then Copier's output)."""
        print(f"capture: {shown} (answering in a terminal)", file=sys.stderr, flush=True)
        session.defaults_from(ORDER[0])
        session.finish()
        self.lines.append(f"$ {shown}")
        screen = normalise(session.screen().rstrip(), self.paths)
        self.lines.extend(screen.splitlines())

    def note(self, text: str) -> None:
        self.lines.append(f"... ({text})")

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def capture(
    out: Path, workdir: Path, uv: str, installed: Callable[[Path], None] | None = None
) -> list[Path]:
    """Write the tutorial's snippets into out/tutorial/; return the files written.

    `installed(project)`, if given, is called once `make install` has made the project's venv.
    """
    workdir = workdir.resolve()
    project = workdir / PROJECT
    if project.exists():
        raise SystemExit(f"capture: {project} exists; give an empty --workdir.")
    tools = workdir / "tools"  # uv alone on PATH, as a user who ran `pip install uv`
    tools.mkdir(parents=True, exist_ok=True)
    (tools / "uv").symlink_to(Path(uv).resolve())
    settings = workdir / "copier-settings.yml"  # no personal Copier defaults
    settings.write_text("{}\n")
    paths = {
        str(project): f"/path/to/{PROJECT}",
        str(ROOT): "/path/to/copier-sagemaker-pipelines",
        str(Path(sys.executable).parent) + "/": "",  # copier's Python, shown as python3
    }
    shell = clean_env([tools])
    shell["COPIER_SETTINGS_PATH"] = str(settings)
    activated = {**shell, "VIRTUAL_ENV": str(project / ".venv")}
    activated["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{shell['PATH']}"
    copier = shutil.which("copier", path=str(Path(sys.executable).parent)) or "copier"
    snippets: dict[str, str] = {}

    t = Transcript(paths)
    t.interactive(
        f"copier copy --trust /path/to/copier-sagemaker-pipelines {PROJECT}",
        Questionnaire(Path(copier), ROOT, PROJECT, workdir, env=shell, rows=400, columns=1000),
    )
    created = [line for line in t.lines if re.match(r"^\s+create\s", line)]
    first = t.lines.index(created[0])
    t.lines[first : first + len(created)] = [
        "    create  ...",
        "... (one line per file and folder of the project; the reference lists them)",
    ]
    snippets["copier-copy.txt"] = t.text()

    t = Transcript(paths)
    t.run("make install", ["make", "install"], project, shell, keep="stdout")
    if installed is not None:
        installed(project)
    t.note("uv's progress and the list of installed packages, on stderr, not shown")
    snippets["make-install.txt"] = t.text()

    t = Transcript(paths)
    definition = t.run(f"python -m {PACKAGE} definition", ["python", "-m", PACKAGE, "definition"],
                       project, activated)  # fmt: skip
    lines = definition.splitlines()
    t.lines = t.lines[: 1 + DEFINITION_HEAD]
    t.note(f"{len(lines) - DEFINITION_HEAD} more lines")
    snippets["definition.txt"] = t.text()
    full = normalise(json.dumps(json.loads(definition), indent=2), paths, NORMALISE_DEFINITION)
    snippets["definition.json"] = full + "\n"

    t = Transcript(paths)
    t.run("make run-local", ["make", "run-local"], project, activated)
    snippets["run-local.txt"] = t.text()

    t = Transcript(paths)
    t.run(f"python -m {PACKAGE} run-local -p MetricThreshold=0.95",
          ["python", "-m", PACKAGE, "run-local", "-p", "MetricThreshold=0.95"],
          project, activated, expect=1)  # fmt: skip
    snippets["run-local-gate-fails.txt"] = t.text()

    t = Transcript(paths)
    t.run(f"python -m {PACKAGE} models list", ["python", "-m", PACKAGE, "models", "list"],
          project, activated)  # fmt: skip
    snippets["models-list.txt"] = t.text()

    snippets["aws.txt"] = capture_aws(project, activated, paths)

    target = out / "tutorial"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in snippets.items():
        (target / name).write_text(text)
        written.append(target / name)
    return written


def capture_aws(project: Path, activated: dict[str, str], paths: dict[str, str]) -> str:
    """upsert and start against a moto server: the account is a local stand-in."""
    region = re.search(r"^aws_region: (\S+)", (project / ".copier-answers.yml").read_text(), re.M)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    aws = {
        **activated,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region.group(1) if region else "us-east-1",
    }
    server = subprocess.Popen(
        [str(project / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(f"{endpoint}/moto-api/")
        # The bucket exists in the account already (the CI/CD stack creates one).
        create = (
            "import boto3, os; r = os.environ['AWS_DEFAULT_REGION']; s3 = boto3.client('s3'); "
            f"s3.create_bucket(Bucket='{BUCKET}', **({{}} if r == 'us-east-1' else "
            "{'CreateBucketConfiguration': {'LocationConstraint': r}}))"
        )
        subprocess.run(["python", "-c", create], env=aws, check=True, cwd=project)
        t = Transcript(paths)
        t.lines += [
            f"$ export SAGEMAKER_ROLE_ARN={ROLE_ARN}",
            f"$ export SAGEMAKER_BUCKET={BUCKET}",
        ]
        aws.update(SAGEMAKER_ROLE_ARN=ROLE_ARN, SAGEMAKER_BUCKET=BUCKET)
        for args in (["upsert"], ["start"], ["start", "-p", "MetricThreshold=0.9"]):
            t.run(f"python -m {PACKAGE} {' '.join(args)}", ["python", "-m", PACKAGE, *args],
                  project, aws)  # fmt: skip
        return t.text()
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SNIPPETS, help="default: docs/_snippets")
    parser.add_argument("--workdir", type=Path, help="empty scratch folder (default: a temp dir)")
    parser.add_argument("--uv", default=os.environ.get("UV") or shutil.which("uv") or "uv")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        written = capture(args.out, args.workdir, args.uv)
    else:
        with tempfile.TemporaryDirectory(prefix="docs-capture-") as scratch:
            written = capture(args.out, Path(scratch), args.uv)
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
