"""Fixtures shared by the runner's test modules."""

from __future__ import annotations

import pytest

from sagemaker_pipelines_local import LocalObjectStore


@pytest.fixture
def workdir(tmp_path):
    """A workspace folder, as `.local/` is in a generated project."""
    path = tmp_path / ".local"
    path.mkdir()
    return path


@pytest.fixture
def store(workdir):
    return LocalObjectStore(workdir)
