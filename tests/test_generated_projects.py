"""Render the matrix of answers and run each generated project's own commands, as a user would:
`make install`, `make test` (offline, in one process), `make lint` (ruff + pre-commit with
local hooks)."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import ONCE_PER_PAIR, UV, run, summary_line
from test_render import MATRIX

pytestmark = pytest.mark.slow

# The generated tests marked `deploy` (approve, deploy to local endpoints, smoke test, serve,
# invoke) and `rerun` (a second run-local: the champion, a run from a step) do the same work
# whatever the dataset, metric or CI provider: what changes them is the SDK (the
# definitions) and the problem type (the predictions and metrics compared). They run in one
# case of each pair; the other cases deselect them (about 20 s of CPU each).
DEPLOY_CASES = {"defaults", "housing-rmse", "v2-penguins-f1", "v2-housing-mae-no-gate"}


def test_each_sdk_and_problem_type_runs_the_deploy_tests_once():
    pairs = {
        (
            MATRIX[case].get("sagemaker_sdk", "v3"),
            MATRIX[case].get("problem_type", "classification"),
        )
        for case in DEPLOY_CASES
    }
    assert len(pairs) == len(DEPLOY_CASES) == 4, pairs


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_generated_project_tests_and_lint_pass(render_project, shared_bytecode, case):
    project = render_project(case, **MATRIX[case])
    # The render made it a git repository with every file staged: `make lint` (pre-commit)
    # works right after `copier copy`, with no step of ours.
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=project,
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert "pyproject.toml" in staged and ".copier-answers.yml" in staged, staged
    run(["make", "install", f"UV={UV}"], project)
    shared_bytecode.seed(project / ".venv")
    # One pytest process per case: this suite already runs its cases on every core, and
    # xdist workers inside each would repeat the session fixtures (the SDK import, the
    # sample run) per worker. The v2 -> v3 update test runs `make test` with its workers.
    only = {} if case in DEPLOY_CASES else {"PYTEST_ADDOPTS": ONCE_PER_PAIR}
    tests = run(["make", "test", "TEST_WORKERS=0"], project, extra_env=only)
    summary = summary_line(tests.stdout)
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    run(["make", "lint"], project)
    shared_bytecode.keep(project / ".venv")
