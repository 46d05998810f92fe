"""`copier update`, as a team lives it: a tagged template in its own git repository, a
project rendered from an older tag, committed and edited, then updated.

The template under test is this working tree, committed into a temporary repository as
v1.0.0; the tests then commit changes of their own as v1.1.0 (or rebuild an older layout
as v0.1.0 to run a migration).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import copier
import pytest
import yaml
from conftest import BIN, ONCE_PER_PAIR, ROOT, UV, run, summary_line

PACKAGE = "iris_classifier"
SCRIPTS = "template/src/{{package_name}}/scripts"
TRAIN = f"{SCRIPTS}/train.py"
PIPELINE_V3 = "template/src/{{package_name}}/{% if sagemaker_sdk == 'v3' %}pipeline.py{% endif %}"
DEFINITION_TESTS = "template/tests/test_definition.py"
VENDORED_RUNNER = "template/src/{{package_name}}/local"
SAMPLE = "template/data/{% if not dataset_path %}iris.csv{% endif %}"
INFRA = "template/{% if ci_provider != 'none' %}infra{% endif %}"
BUILDSPECS = [
    "{% if ci_provider == 'codepipeline' %}buildspec.yml{% endif %}.jinja",
    "{% if ci_provider == 'codepipeline' %}buildspec-release.yml{% endif %}.jinja",
]
TEAM_OWNED = ["NOTES.md", "data/iris.csv"]
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")


# --------------------------------------------------------------------------- helpers
def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Team", "-c", "user.email=team@example.com", *args],
        cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def has_conflict(text: str) -> bool:
    """A conflict marker at the start of a line (the README mentions them mid-line)."""
    return re.search(r"^(<<<<<<<|>>>>>>>) ", text, re.MULTILINE) is not None


def template_repo(destination: Path, tag: str | None = "v1.0.0") -> Path:
    """This working tree's template (uncommitted changes included) as a git repo at `tag`
    (untagged with None, as the published repository is)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(destination, "init", "-q", "-b", "main")
    commit_all(destination, f"template {tag or 'without a tag'}")
    if tag:
        git(destination, "tag", tag)
    return destination


def release(repo: Path, tag: str, message: str) -> None:
    commit_all(repo, message)
    git(repo, "tag", tag)


def copy_project(template: Path, destination: Path, tag: str, **answers: object) -> Path:
    """Render `template` at `tag` (a tag or a commit), then commit it as the team's repo."""
    copier.run_copy(
        str(template), str(destination), data=answers, defaults=True, unsafe=True,
        quiet=True, vcs_ref=tag, settings=copier.Settings(),
    )  # fmt: skip
    git(destination, "init", "-q", "-b", "main")
    commit_all(destination, "rendered")
    return destination


def update_project(project: Path, tag: str | None = None, **answers: object) -> None:
    copier.run_update(
        str(project), data=answers, defaults=True, overwrite=True, unsafe=True, quiet=True,
        vcs_ref=tag, conflict="inline", settings=copier.Settings(),
    )  # fmt: skip


def project_files(project: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


# --------------------------------------------------------------------------- v1.0.0 -> v1.1.0
# The template's own changes in v1.1.0: shared files, template-owned files, team-owned files.
TEMPLATE_CHANGES = {
    TRAIN: ('"""Train a random forest', '"""Train a random forest (template v1.1.0)'),
    PIPELINE_V3: (
        "# Container paths, passed explicitly",
        "# v1.1.0: container paths, passed explicitly",
    ),
    "template/README.md.jinja": (
        "## Bad data\n",
        "## Bad data\n\nTemplate v1.1.0 documents bad data here.\n",
    ),
    DEFINITION_TESTS: (
        '"""The pipeline definition, built offline',
        '"""(v1.1.0) The pipeline definition, built offline',
    ),
    "template/Makefile.jinja": ("UV ?= uv\n", "UV ?= uv\n# template v1.1.0\n"),
    SAMPLE: (
        "5.9,3.0,5.1,1.8,virginica\n",
        "5.9,3.0,5.1,1.8,virginica\n6.0,3.0,5.0,1.9,virginica\n",
    ),
    "template/NOTES.md.jinja": ("## Open questions\n", "## Open questions\n\n## v1.1.0 section\n"),
}


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    """The template at v1.0.0 (this working tree) and v1.1.0 (TEMPLATE_CHANGES)."""
    repo = template_repo(tmp_path_factory.mktemp("template"))
    for name, (old, new) in TEMPLATE_CHANGES.items():
        edit(repo / name, old, new)
    release(repo, "v1.1.0", "template v1.1.0")
    return repo


def test_team_edits_survive_and_template_changes_arrive(templates, tmp_path):
    project = copy_project(templates, tmp_path / "project", "v1.0.0")
    pkg = project / "src" / PACKAGE
    # What a team does in its first weeks.
    fit_line = "    forest.fit(matrix, y)"
    edit(pkg / "scripts/train.py", fit_line, f"{fit_line}  # team: every row, no sample")
    edit(pkg / "pipeline.py", "    prefix = settings.project_slug",
         "    prefix = settings.project_slug  # team: one prefix per project")  # fmt: skip
    contacts = "## Team contacts\n\nml-team@example.com\n\n"
    edit(project / "README.md", "## Where things live", f"{contacts}## Where things live")
    (project / "tests" / "test_team.py").write_text("def test_team():\n    assert 1 + 1 == 2\n")
    (project / "NOTES.md").write_text("# Our notes\n\nThe data comes from the CRM export.\n")
    with (project / "data" / "iris.csv").open("a") as sample:
        sample.write("5.0,3.3,1.4,0.2,setosa\n")
    team_notes = (project / "NOTES.md").read_bytes()
    team_sample = (project / "data" / "iris.csv").read_bytes()
    commit_all(project, "team edits")

    # A changed answer arrives with the update.
    update_project(project, "v1.1.0", metric_threshold="0.85")

    assert answers_of(project)["_commit"] == "v1.1.0"
    assert answers_of(project)["metric_threshold"] == "0.85"
    files = project_files(project)
    text = {name: data.decode(errors="replace") for name, data in files.items()}
    # Every team edit survived.
    train = text[f"src/{PACKAGE}/scripts/train.py"]
    assert "# team: every row, no sample" in train
    assert "# team: one prefix per project" in text[f"src/{PACKAGE}/pipeline.py"]
    assert "## Team contacts" in text["README.md"]
    assert text["tests/test_team.py"] == "def test_team():\n    assert 1 + 1 == 2\n"
    # Team-owned files are never overwritten, not even merged.
    assert files["NOTES.md"] == team_notes
    assert files["data/iris.csv"] == team_sample
    # Every template change arrived: shared and template-owned files.
    assert '"""Train a random forest (template v1.1.0)' in train
    assert "# v1.1.0: container paths, passed explicitly" in text[f"src/{PACKAGE}/pipeline.py"]
    assert "Template v1.1.0 documents bad data here." in text["README.md"]
    assert text["tests/test_definition.py"].startswith('"""(v1.1.0) The pipeline definition')
    assert "# template v1.1.0\n" in text["Makefile"]
    # The changed answer reached the code and the docs.
    assert "metric_threshold: float = 0.85" in text[f"src/{PACKAGE}/config.py"]
    assert "| MetricThreshold | 0.85 |" in text["README.md"]
    # A clean merge: no conflict markers, no rejected hunks.
    assert not [n for n, t in text.items() if has_conflict(t)]
    assert not [n for n in files if n.endswith(".rej")]


def test_untouched_project_updated_equals_a_fresh_render(templates, tmp_path):
    updated = copy_project(templates, tmp_path / "updated", "v1.0.0", ci_provider="github-actions")
    update_project(updated, "v1.1.0")
    fresh = copy_project(templates, tmp_path / "fresh", "v1.1.0", ci_provider="github-actions")
    first = copy_project(templates, tmp_path / "first", "v1.0.0", ci_provider="github-actions")
    updated_files, fresh_files = project_files(updated), project_files(fresh)
    assert sorted(updated_files) == sorted(fresh_files)
    differ = [name for name in fresh_files if updated_files[name] != fresh_files[name]]
    # The team's files keep their first render, by design (`_skip_if_exists`): v1.1.0 changed
    # both, and neither change may reach a project that already has them.
    assert sorted(differ) == sorted(TEAM_OWNED), f"differs from a fresh v1.1.0 render: {differ}"
    for name in TEAM_OWNED:
        assert updated_files[name] == (first / name).read_bytes(), name


def test_check_update_reports_the_newer_version(templates, tmp_path):
    project = copy_project(templates, tmp_path / "project", "v1.0.0")
    copier_cli = str(BIN / "copier")

    def check() -> dict:
        result = subprocess.run(
            [copier_cli, "check-update", "--output-format", "json"],
            cwd=project, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(result.stdout)

    assert check() == {"update_available": True, "current_version": "1.0.0",
                       "latest_version": "1.1.0"}  # fmt: skip
    update_project(project)  # no tag: the newest
    commit_all(project, "update")
    assert check()["update_available"] is False


# --------------------------------------------------------------------------- conflicts
def hook_tools(project: Path) -> None:
    """The generated hooks call .venv/bin tools: borrow this environment's instead of
    installing the project (the generated projects' own tests run `make lint` for real)."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("ruff", "check-merge-conflict", "check-yaml", "end-of-file-fixer",
                 "trailing-whitespace-fixer"):  # fmt: skip
        (bin_dir / tool).symlink_to(BIN / tool)


def try_commit(project: Path, env: dict[str, str]) -> tuple[int, str]:
    """`git commit` as the team types it, through the installed pre-commit hook."""
    command = ["git", "-c", "user.name=Team", "-c", "user.email=team@example.com", "commit"]
    result = subprocess.run(
        [*command, "-m", "update"], cwd=project, env=env, capture_output=True, text=True
    )
    return result.returncode, result.stdout + result.stderr  # hook output goes to stderr


def test_a_real_conflict_is_inline_and_cannot_be_committed(tmp_path):
    repo = template_repo(tmp_path / "template")
    line = "    forest.fit(matrix, y)"
    edit(repo / TRAIN, line, "    forest.fit(matrix, y)  # template: every training row")
    release(repo, "v1.1.0", "template changes the same line")
    project = copy_project(repo, tmp_path / "project", "v1.0.0")
    train = project / "src" / PACKAGE / "scripts" / "train.py"
    edit(train, line, "    forest.fit(matrix, y)  # team: what we fit on")
    commit_all(project, "team edit")

    update_project(project, "v1.1.0")

    text = train.read_text()
    for marker in CONFLICT_MARKERS:
        assert marker in text, f"no {marker!r} in train.py"
    ours = text.split(CONFLICT_MARKERS[0], 1)[1].split("=======", 1)[0]
    theirs = text.split("=======", 1)[1].split(CONFLICT_MARKERS[1], 1)[0]
    assert "# team: what we fit on" in ours and "# template: every training row" in theirs

    # The generated pre-commit hooks refuse the markers, then a rejected hunk left behind.
    hook_tools(project)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(BIN / "pre-commit"), "install"], cwd=project, env=env, check=True,
                   capture_output=True)  # fmt: skip
    git(project, "add", "-A")
    head = git(project, "rev-parse", "HEAD")
    status, output = try_commit(project, env)
    assert status != 0, output
    assert re.search(r"no merge conflict markers.*Failed", output), output
    assert git(project, "rev-parse", "HEAD") == head, "the conflicted update was committed"

    before, rest = text.split(CONFLICT_MARKERS[0] + "\n", 1)
    after = rest.split(CONFLICT_MARKERS[1] + "\n", 1)[1]
    train.write_text(
        f"{before}{line}  # resolved: the template's comment, the team's float\n{after}"
    )
    (project / "Makefile.rej").write_text("@@ -1 +1 @@\n-a\n+b\n")
    git(project, "add", "-A")
    status, output = try_commit(project, env)
    assert status != 0 and re.search(r"no \.rej files.*Failed", output), output
    (project / "Makefile.rej").unlink()
    git(project, "add", "-A")
    status, output = try_commit(project, env)
    assert status == 0, output


# --------------------------------------------------------------------------- migrations
def test_migration_moves_the_buildspecs_with_the_team_edits(tmp_path):
    """0.2.0 moved the buildspecs into infra/; a plain update would drop the team's edits."""
    repo = template_repo(tmp_path / "template", tag="v0.2.0")
    # Rebuild 0.1.0's layout from the 0.2.0 tree: buildspecs at the top, no template check.
    git(repo, "checkout", "-q", "-b", "old", "v0.2.0")
    for name in BUILDSPECS:
        git(repo, "mv", f"{INFRA}/{name}", f"template/{name}")
    buildspec = repo / "template" / BUILDSPECS[0]
    check = "      # Reports a newer template version in the build log; never fails the build.\n"
    edit(buildspec, check + "      - make template-status\n", "")
    release(repo, "v0.1.0", "0.1.0 layout")
    git(repo, "checkout", "-q", "main")

    project = copy_project(repo, tmp_path / "project", "v0.1.0")
    assert (project / "buildspec.yml").is_file() and not (project / "infra/buildspec.yml").exists()
    team_line = "      - make bench-smoke  # team\n"
    edit(
        project / "buildspec.yml",
        "  build:\n    commands:\n",
        "  build:\n    commands:\n" + team_line,
    )
    commit_all(project, "team edits the buildspec")

    update_project(project, "v0.2.0")

    assert not (project / "buildspec.yml").exists()
    assert not (project / "buildspec-release.yml").exists()
    moved = (project / "infra/buildspec.yml").read_text()
    assert "- make bench-smoke  # team" in moved, "the team's edit was lost in the move"
    assert "- make template-status" in moved, "the template's change did not arrive"
    assert not has_conflict(moved)
    fresh = copy_project(repo, tmp_path / "fresh", "v0.2.0")
    assert (project / "infra/buildspec-release.yml").read_bytes() == (
        fresh / "infra/buildspec-release.yml"
    ).read_bytes()


# --------------------------------------------------------------------------- 0.3.0: runner package
def vendor_the_runner(repo: Path) -> None:
    """0.2.0's layout, rebuilt from this tree: a copy of the runner and its tests in every
    project."""
    shutil.copytree(repo / "runner/src/sagemaker_pipelines_local", repo / VENDORED_RUNNER)
    shutil.copy(repo / "runner/tests/test_runner.py", repo / "template/tests/test_local_runner.py")


def kept_aside(project: Path) -> list[str]:
    kept = project / "local-runner-edits"
    return sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())


def test_update_removes_the_vendored_runner_and_keeps_the_team_edits_aside(tmp_path, capfd):
    repo = template_repo(tmp_path / "template", tag="v0.3.0")
    git(repo, "checkout", "-q", "-b", "old", "v0.3.0")
    vendor_the_runner(repo)
    release(repo, "v0.2.0", "0.2.0 layout: the runner copied into each project")
    git(repo, "checkout", "-q", "main")

    project = copy_project(repo, tmp_path / "project", "v0.2.0")
    local = project / "src" / PACKAGE / "local"
    assert (local / "steps.py").is_file() and (project / "tests/test_local_runner.py").is_file()
    edit(local / "steps.py", "def cleanup_work_dir(job: StepJob) -> None:\n",
         "def cleanup_work_dir(job: StepJob) -> None:  # team: our fix\n")  # fmt: skip
    (local / "team_executor.py").write_text("# the team's own executor\n")
    commit_all(project, "team edits the runner")
    team_steps = (local / "steps.py").read_bytes()
    capfd.readouterr()

    update_project(project, "v0.3.0")

    output = capfd.readouterr().out
    assert not local.exists(), sorted(p.name for p in local.iterdir())
    assert not (project / "tests/test_local_runner.py").exists()
    runner_dir = f"src/{PACKAGE}/local"
    assert kept_aside(project) == [f"{runner_dir}/steps.py", f"{runner_dir}/team_executor.py"]
    assert (project / "local-runner-edits" / runner_dir / "steps.py").read_bytes() == team_steps
    assert f"local-runner-edits/{runner_dir}/steps.py (edited by you)" in output, output
    assert f"local-runner-edits/{runner_dir}/team_executor.py (added by you)" in output, output
    assert "sagemaker-pipelines-local[offline]" in (project / "pyproject.toml").read_text()
    # Apart from the team's copies kept aside, the project is what 0.3.0 renders.
    fresh = copy_project(repo, tmp_path / "fresh", "v0.3.0")
    files = project_files(project)
    assert set(files) - set(project_files(fresh)) == {
        f"local-runner-edits/{name}" for name in kept_aside(project)
    }
    assert set(project_files(fresh)) <= set(files)
    assert not [n for n, data in files.items() if has_conflict(data.decode(errors="replace"))]


def test_untagged_template_commit_to_commit_update_removes_the_runner_once(tmp_path, capfd):
    """The published repository has no tags: the project records a commit, and the migration
    must act on what the project holds, not on a version number."""
    repo = template_repo(tmp_path / "template", tag=None)
    vendor_the_runner(repo)
    commit_all(repo, "the runner copied into each project")
    old = git(repo, "rev-parse", "HEAD").strip()
    vendored = len(list((repo / VENDORED_RUNNER).iterdir())) + 1  # and its tests
    git(repo, "rm", "-r", "-q", VENDORED_RUNNER, "template/tests/test_local_runner.py")
    commit_all(repo, "the runner is a package")
    new = git(repo, "rev-parse", "HEAD").strip()

    project = copy_project(repo, tmp_path / "project", old)
    assert old.startswith(answers_of(project)["_commit"])
    assert (project / "src" / PACKAGE / "local" / "runner.py").is_file()
    capfd.readouterr()

    update_project(project, new)

    output = capfd.readouterr().out
    assert new.startswith(answers_of(project)["_commit"])
    assert not (project / "src" / PACKAGE / "local").exists()
    assert not (project / "tests/test_local_runner.py").exists()
    assert not (project / "local-runner-edits").exists(), "nothing was edited: nothing to keep"
    assert f"removed its copy from src/ and tests/ ({vendored} files)" in output, output
    assert "Kept" not in output
    fresh = copy_project(repo, tmp_path / "fresh", new)
    assert sorted(project_files(project)) == sorted(project_files(fresh))

    # Idempotent: once the removal is committed, the migration finds nothing to do.
    commit_all(project, "update")
    again = subprocess.run(
        [sys.executable, str(ROOT / "migrations/remove_vendored_runner.py"), "--from-ref", old],
        cwd=project, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert git(project, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- SDK v2 -> v3
@pytest.mark.slow
def test_sdk_v2_project_moves_to_v3_and_passes_its_tests(tmp_path, shared_bytecode):
    repo = template_repo(tmp_path / "template")
    project = copy_project(repo, tmp_path / "project", "v1.0.0", sagemaker_sdk="v2")
    assert '"sagemaker==2.257.*"' in (project / "pyproject.toml").read_text()
    pkg = project / "src" / PACKAGE
    edit(pkg / "scripts/train.py", "    forest.fit(matrix, y)",
         "    forest.fit(matrix, y)  # team edit")  # fmt: skip
    (project / "tests" / "test_team.py").write_text(
        f"from {PACKAGE}.config import Settings\n\n\n"
        "def test_team_settings():\n    assert Settings().sagemaker_sdk == 'v3'\n"
    )
    commit_all(project, "team edits")

    update_project(project, "v1.0.0", sagemaker_sdk="v3", framework_version="1.9-0")

    answers = answers_of(project)
    assert (answers["sagemaker_sdk"], answers["framework_version"]) == ("v3", "1.9-0")
    pyproject = (project / "pyproject.toml").read_text()
    assert '"sagemaker==3.27.*"' in pyproject and '"scikit-learn==1.9.0"' in pyproject
    assert (
        "from sagemaker.mlops.workflow.pipeline import Pipeline"
        in (pkg / "pipeline.py").read_text()
    )
    assert "# team edit" in (pkg / "scripts/train.py").read_text()
    assert (project / "tests" / "test_team.py").is_file()
    fresh = copy_project(repo, tmp_path / "fresh", "v1.0.0")
    moved, new = project_files(project), project_files(fresh)
    assert set(moved) == set(new) | {"tests/test_team.py"}
    differ = sorted(n for n in new if moved[n] != new[n])
    # uv.lock is the team's (_skip_if_exists): the update keeps the v2 lock, and the next
    # `make install` brings it in step with the v3 pins.
    assert differ == [f"src/{PACKAGE}/scripts/train.py", "uv.lock"], differ

    commit_all(project, "move to SDK v3")
    run(["make", "install", f"UV={UV}"], project)
    locked = {
        p["name"]: p["version"] for p in tomllib.loads((project / "uv.lock").read_text())["package"]
    }
    assert locked["sagemaker"].startswith("3.27.") and locked["scikit-learn"] == "1.9.0", locked
    shared_bytecode.seed(project / ".venv")
    # The deploy and rerun tests' path (SDK v3, classification) runs in the matrix's defaults
    # case.
    tests = run(["make", "test"], project, extra_env={"PYTEST_ADDOPTS": ONCE_PER_PAIR})
    summary = summary_line(tests.stdout)
    assert "passed" in summary and "failed" not in summary, summary
    # CI's template check, in the project's own environment: it reports and exits 0.
    assert run(["make", "template-status"], project).stdout.strip() == "Project is up-to-date!"
    edit(repo / "template/NOTES.md.jinja", "## Decisions\n", "## Decisions\n\n## Experiments\n")
    release(repo, "v1.0.1", "a newer template")
    status = run(["make", "template-status"], project).stdout
    assert "New template version available" in status and "1.0.1" in status, status


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
