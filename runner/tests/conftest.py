"""Fixtures shared by the runner's test modules."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sagemaker_pipelines_local import LocalObjectStore
from sagemaker_pipelines_local.warmpool import stop_warm_pools


@pytest.fixture
def workdir(tmp_path):
    """A workspace folder, as `.local/` is in a generated project."""
    path = tmp_path / ".local"
    path.mkdir()
    return path


@pytest.fixture
def store(workdir):
    return LocalObjectStore(workdir)


@pytest.fixture(autouse=True, scope="session")
def private_warm_pools():
    """The runs of the tests keep their warm pools in a folder of their own, stopped at the
    end (the default keep-alive would leave the servers up for ten minutes)."""
    folder = Path(tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield folder
    stop_warm_pools(folder / f"sagemaker-pipelines-local-{os.getuid()}")
    shutil.rmtree(folder, ignore_errors=True)
    if saved is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = saved
